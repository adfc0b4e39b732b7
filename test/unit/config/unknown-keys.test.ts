import { describe, expect, it } from "vitest";
import { z } from "zod";
import { extendHandlerSection, HandlerSection, HandlerSectionFields } from "../../../src/config/model-config.ts";
import { closestKey, schemaKeys, unknownConfigKeys } from "../../../src/config/unknown-keys.ts";

describe("schemaKeys", () => {
  it("reads the shipped handler section's keys from its shape, so every declared field is known", () => {
    expect(schemaKeys(HandlerSection)).toEqual(new Set(Object.keys(HandlerSectionFields)));
  });

  it("knows an author's extension, through wrappers, intersections and unions", () => {
    const Section = extendHandlerSection({ system_prompt: z.string().default("Be brief.") });
    expect(schemaKeys(Section)?.has("system_prompt")).toBe(true);
    expect(schemaKeys(Section.optional())?.has("model_path")).toBe(true);
    expect(schemaKeys(z.object({ a: z.string() }).and(z.object({ b: z.string() })))).toEqual(new Set(["a", "b"]));
    expect(schemaKeys(z.union([z.object({ a: z.string() }), z.object({ b: z.string() })]))).toEqual(new Set(["a", "b"]));
  });

  it("gives up on a schema whose keys cannot be known (nothing is then reported)", () => {
    expect(schemaKeys(z.record(z.string(), z.unknown()))).toBeUndefined();
    expect(unknownConfigKeys({ handler: { anything: 1 } }, z.record(z.string(), z.unknown()), "h.ts")).toEqual([]);
  });
});

describe("closestKey", () => {
  it.each([
    ["quantise", "quantize"],
    ["system_promt", "system_prompt"],
    ["maxWorker", "maxWorkers"],
    ["max_workers", "maxWorkers"],
    ["modle_path", "model_path"],
  ])("suggests %s -> %s", (typo, meant) => {
    expect(closestKey(typo, [...Object.keys(HandlerSectionFields), "system_prompt", "maxWorkers", "minWorkers"])).toBe(meant);
  });

  it("suggests nothing for a key far from every known one", () => {
    expect(closestKey("temperature", Object.keys(HandlerSectionFields))).toBeUndefined();
  });
});

describe("unknownConfigKeys", () => {
  it("reports a misspelt key of the shipped handler section with a suggestion", () => {
    const found = unknownConfigKeys({ handler: { model_path: "/m", quantise: "nf4" } }, HandlerSection, "tiny.ts");
    expect(found).toEqual([
      {
        path: "handler.quantise",
        suggestion: "quantize",
        message: 'handler.quantise: unknown key, not read by tiny.ts\'s config schema; did you mean "quantize"?',
      },
    ]);
  });

  it("checks the handler section against the author's own schema", () => {
    const Section = extendHandlerSection({ system_prompt: z.string().default("Be brief.") });
    const raw = { handler: { model_path: "/m", system_promt: "Talk like a pirate." } };
    expect(unknownConfigKeys(raw, Section, "pirate.ts").map((u) => u.message)).toEqual([
      'handler.system_promt: unknown key, not read by pirate.ts\'s config schema; did you mean "system_prompt"?',
    ]);
    expect(unknownConfigKeys({ handler: { model_path: "/m", system_prompt: "x" } }, Section, "pirate.ts")).toEqual([]);
  });

  it("checks the top level against TorchServe 0.12's model-config keys, and torchrun's", () => {
    const raw = { maxWorker: 1, minWorkers: 1, useVenv: true, torchrun: { "nproc-per-node": 2, nodes: 1 }, handler: { model_path: "/m" } };
    expect(unknownConfigKeys(raw, HandlerSection, "h.ts").map((u) => [u.path, u.suggestion])).toEqual([
      ["maxWorker", "maxWorkers"],
      ["torchrun.nodes", "nnodes"],
    ]);
  });

  it("reports a key with no close match without a suggestion", () => {
    const [found] = unknownConfigKeys({ handler: { model_path: "/m" }, colour: "blue" }, HandlerSection, "h.ts");
    expect(found).toEqual({
      path: "colour",
      suggestion: undefined,
      message: "colour: unknown key, not read by TorchServe 0.12's model config",
    });
  });
});

import { readFileSync } from "node:fs";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { describe, expect, it } from "vitest";
import { gpuLayoutIssues, parallelLevel } from "../../../src/config/gpu-layout.ts";
import { HandlerSection, parseModelConfig } from "../../../src/config/model-config.ts";
import { validateModelConfig } from "../../../src/config/model-config-file.ts";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const handler = (num_gpu_per_model: number) => ({ model_path: "/models/llama", num_gpu_per_model });

describe("parallelLevel (what TorchServe 0.12 makes of torchrun)", () => {
  it("is 0 without a parallelType, whatever torchrun says", () => {
    expect(parallelLevel({ torchrun: { "nproc-per-node": 4 } })).toBe(0);
    expect(parallelLevel({})).toBe(0);
  });
  it("is nproc-per-node (default 1) with a parallelType", () => {
    expect(parallelLevel({ parallelType: "custom", torchrun: { "nproc-per-node": 4 } })).toBe(4);
    expect(parallelLevel({ parallelType: "custom", torchrun: {} })).toBe(1);
    expect(parallelLevel({ parallelType: "tp", parallelLevel: 2 })).toBe(2);
    expect(parallelLevel({ parallelType: "tp" })).toBe(0);
  });
});

describe("gpuLayoutIssues", () => {
  it("accepts the layouts a worker can be placed in", () => {
    expect(gpuLayoutIssues({ torchrun: { "nproc-per-node": 1 } }, 2)).toEqual([]); // torchrun ignored: all GPUs visible
    expect(gpuLayoutIssues({ deviceIds: [4, 5, 6, 7] }, 2)).toEqual([]);
    expect(gpuLayoutIssues({ parallelType: "custom", torchrun: { "nproc-per-node": 2 } }, 2)).toEqual([]);
    expect(gpuLayoutIssues({ parallelType: "custom", torchrun: { "nproc-per-node": 2 }, deviceIds: [2, 3, 4, 5] }, 2)).toEqual([]);
    expect(gpuLayoutIssues({ parallelType: "tp", torchrun: { "nproc-per-node": 1 } }, 1)).toEqual([]); // one process, one GPU
  });
  it("refuses torchrun copies of a worker (pp, tp, pptp with more than one process), naming the fix", () => {
    for (const parallelType of ["pp", "tp", "pptp"]) {
      const [issue, ...rest] = gpuLayoutIssues({ parallelType, torchrun: { "nproc-per-node": 2 } }, 2);
      expect(rest).toEqual([]);
      expect(issue!.path).toEqual(["parallelType"]);
      expect(issue!.message).toMatch(
        new RegExp(`parallelType ${parallelType} makes TorchServe start torchrun with 2 processes per worker`),
      );
      expect(issue!.message).toMatch(/use parallelType: custom with torchrun nproc-per-node: 2/);
    }
  });
  it("refuses nproc-per-node other than num_gpu_per_model under a parallelType", () => {
    const [issue] = gpuLayoutIssues({ parallelType: "custom", torchrun: { "nproc-per-node": 1 } }, 2);
    expect(issue).toEqual({
      path: ["torchrun", "nproc-per-node"],
      message: expect.stringMatching(
        /exactly 1 GPU\(s\) \(CUDA_VISIBLE_DEVICES\), but handler.num_gpu_per_model is 2 \(no worker could be placed\): set torchrun nproc-per-node: 2/,
      ),
    });
    expect(gpuLayoutIssues({ parallelType: "custom", torchrun: { "nproc-per-node": 4 } }, 2)[0]!.message).toMatch(
      /exactly 4 GPU.*2 GPU\(s\) of every worker would stay idle/,
    );
    expect(gpuLayoutIssues({ parallelType: "tp", torchrun: {} }, 2)[0]!.message).toMatch(
      /use parallelType: custom with torchrun nproc-per-node: 2/,
    );
  });
  it("refuses deviceIds that cannot hold a group", () => {
    expect(gpuLayoutIssues({ deviceIds: [3] }, 2)[0]!.message).toMatch(/deviceIds names 1 GPU\(s\) but handler.num_gpu_per_model is 2/);
    const [issue] = gpuLayoutIssues({ parallelType: "custom", torchrun: { "nproc-per-node": 2 }, deviceIds: [1, 2, 3] }, 2);
    expect(issue!.path).toEqual(["deviceIds"]);
    expect(issue!.message).toMatch(/3 GPU\(s\), not a multiple of the 2 TorchServe hands each worker/);
  });
});

describe("parseModelConfig and tsserve archive refuse an impossible layout", () => {
  const bad = { parallelType: "custom", torchrun: { "nproc-per-node": 1 }, handler: handler(2) };
  it("as a parse error at the offending key", () => {
    const parsed = parseModelConfig(bad, HandlerSection);
    expect(parsed.success).toBe(false);
    expect(!parsed.success && parsed.error.issues.map((i) => i.path)).toEqual([["torchrun", "nproc-per-node"]]);
  });
  it("with the reason and the fix in the archive error", () => {
    expect(() => validateModelConfig(bad, HandlerSection, "llama.yaml", "handlers/llama-2-70b-chat.ts")).toThrow(
      /torchrun\.nproc-per-node.*handler\.num_gpu_per_model is 2 \(no worker could be placed\): set torchrun nproc-per-node: 2/s,
    );
  });
  it("takes num_gpu_per_model's default of 1", () => {
    expect(
      parseModelConfig({ parallelType: "custom", torchrun: { "nproc-per-node": 1 }, handler: { model_path: "/m" } }, HandlerSection)
        .success,
    ).toBe(true);
  });
  it("while the shipped configs all pass", () => {
    for (const file of ["llama-2-70b-chat.yaml", "llama-2-13b-chat.yaml", "llama-2-7b-chat.yaml", "vicuna-13b.yaml"]) {
      const parsed = parseModelConfig(parseYaml(readFileSync(path.join(ROOT, "configs", file), "utf8")), HandlerSection);
      expect(parsed.success, file).toBe(true);
    }
  });
});

describe("the layouts shared with the Python planner (test/fixtures/gpu-layouts/cases.json)", () => {
  const { cases } = JSON.parse(readFileSync(path.join(ROOT, "test/fixtures/gpu-layouts/cases.json"), "utf8")) as {
    cases: {
      name: string;
      config: Record<string, unknown> & { handler: { num_gpu_per_model: number } };
      archive: "ok" | "refused";
      worker: "ok" | "refused";
    }[];
  };
  it.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const parsed = parseModelConfig({ ...c.config, handler: { model_path: "/m", ...c.config.handler } }, HandlerSection);
    expect(parsed.success ? "ok" : "refused").toBe(c.archive);
    if (c.worker === "refused") expect(c.archive).toBe("refused"); // what cannot be placed never passes the archive
  });
});

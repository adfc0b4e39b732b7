import { readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { extendHandlerSection, HandlerSection, parseModelConfig, resolveModelPath } from "../../../src/config/model-config.ts";
import { modelConfigJsonSchema } from "../../../src/config/json-schema.ts";
import { completionRequestJsonSchema } from "../../../src/completions/request-json-schema.ts";

const ROOT = path.resolve(import.meta.dirname, "../../..");

describe("resolveModelPath", () => {
  it("resolves a relative path against the config file's folder, not the working directory", () => {
    expect(resolveModelPath("/repo/configs/tiny.yaml", "../.cache/tiny-llama")).toBe("/repo/.cache/tiny-llama");
    expect(resolveModelPath("/repo/configs/tiny.yaml", "weights")).toBe("/repo/configs/weights");
  });
  it("keeps an absolute path", () => {
    expect(resolveModelPath("/repo/configs/x.yaml", "/models/llama/")).toBe("/models/llama/");
  });
  it("expands ~ to the home folder", () => {
    expect(resolveModelPath("/repo/configs/x.yaml", "~/models/a")).toBe(path.join(os.homedir(), "models/a"));
  });
  it("resolves a relative config file path from the working directory first", () => {
    expect(resolveModelPath("configs/x.yaml", "../m")).toBe(path.resolve("m"));
  });
});

describe("handler section", () => {
  it("folds the seed's per_gpu_mem into gpu_max_memory", () => {
    const parsed = HandlerSection.parse({ model_path: "/m", per_gpu_mem: "48GiB" });
    expect(parsed.gpu_max_memory).toBe(48 * 2 ** 30);
    expect(parsed).not.toHaveProperty("per_gpu_mem");
  });
  it("can be extended with typed fields that keep their types and defaults", () => {
    const Section = extendHandlerSection({ system_prompt: z.string().default("Be brief.") });
    const parsed = Section.parse({ model_path: "/m" });
    const typed: string = parsed.system_prompt;
    expect(typed).toBe("Be brief.");
    expect(parsed.quantize).toBe("none");
    expect(Section.safeParse({ model_path: "/m", system_prompt: 1 }).success).toBe(false);
  });
});

describe("shipped configs", () => {
  const files = readdirSync(path.join(ROOT, "configs")).filter((f) => f.endsWith(".yaml"));
  it("include one per shipped handler and the tiny model", () => {
    expect(files.sort()).toEqual(
      expect.arrayContaining([
        "llama-2-13b-chat.yaml",
        "llama-2-70b-chat.yaml",
        "llama-2-7b-chat.yaml",
        "tiny-llama-2-chat.yaml",
        "vicuna-13b.yaml",
      ]),
    );
  });
  for (const file of files) {
    it(`${file} parses with the handler section schema`, () => {
      const parsed = parseModelConfig(parseYaml(readFileSync(path.join(ROOT, "configs", file), "utf8")), HandlerSection);
      expect(parsed.success, parsed.success ? "" : parsed.error.message).toBe(true);
    });
  }
  it("the 70b config carries the seed's settings", () => {
    const parsed = parseModelConfig(parseYaml(readFileSync(path.join(ROOT, "configs/llama-2-70b-chat.yaml"), "utf8")), HandlerSection);
    expect(parsed.success && parsed.data).toMatchObject({
      responseTimeout: 5000,
      torchrun: { "nproc-per-node": 1 },
      handler: { quantize: "nf4", num_gpu_per_model: 1, gpu_max_memory: 48_000_000_000 },
    });
  });
  it("the tiny model's path names the repository's .cache/tiny-llama", () => {
    const file = path.join(ROOT, "configs/tiny-llama-2-chat.yaml");
    const raw = parseYaml(readFileSync(file, "utf8")) as { handler: { model_path: string } };
    expect(resolveModelPath(file, raw.handler.model_path)).toBe(path.join(ROOT, ".cache/tiny-llama"));
  });
  it("config.properties binds to loopback, enables the model API and leaves token auth on", () => {
    const text = readFileSync(path.join(ROOT, "configs/config.properties"), "utf8");
    const props = Object.fromEntries(
      text
        .split("\n")
        .filter((l) => l && !l.startsWith("#"))
        .map((l) => l.split("=", 2) as [string, string]),
    );
    expect(props).toMatchObject({
      inference_address: "http://127.0.0.1:8080",
      management_address: "http://127.0.0.1:8081",
      metrics_address: "http://127.0.0.1:8082",
      enable_model_api: "true",
      install_py_dep_per_model: "false",
    });
    expect(props).not.toHaveProperty("disable_token_authorization");
  });
});

describe("exported JSON Schema", () => {
  const modelConfig = modelConfigJsonSchema();
  const completionRequest = completionRequestJsonSchema();
  it("describes the request fields with their ranges, null allowed", () => {
    const props = (completionRequest as { properties: Record<string, unknown> }).properties;
    expect(Object.keys(props)).toEqual(
      expect.arrayContaining([
        "prompt",
        "messages",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "logprobs",
        "stop",
        "n",
        "best_of",
        "echo",
        "stream",
        "seed",
        "model",
        "repetition_penalty",
      ]),
    );
    expect(JSON.stringify(props.max_tokens)).toContain('"type":"null"');
    expect(JSON.stringify(props.logprobs)).toContain('"maximum":20');
    expect(completionRequest.additionalProperties).not.toBe(false);
  });
  it("describes the handler section with model_path required", () => {
    const handler = (modelConfig as { properties: { handler: { required: string[]; properties: Record<string, unknown> } } }).properties
      .handler;
    expect(handler.required).toContain("model_path");
    expect(Object.keys(handler.properties)).toEqual(expect.arrayContaining(["quantize", "gpu_max_memory", "per_gpu_mem", "dtype"]));
  });
});

describe("asyncCommunication", () => {
  it("refuses batchSize above 1 with continuous batching, naming TorchServe's failure", () => {
    const result = parseModelConfig({ asyncCommunication: true, batchSize: 4, handler: { model_path: "/m" } }, HandlerSection);
    expect(result.success).toBe(false);
    expect(result.error!.issues[0]!.path).toEqual(["batchSize"]);
    expect(result.error!.issues[0]!.message).toMatch(/ConcurrentModificationException/);
    expect(parseModelConfig({ asyncCommunication: false, batchSize: 4, handler: { model_path: "/m" } }, HandlerSection).success).toBe(true);
    expect(parseModelConfig({ asyncCommunication: true, batchSize: 1, handler: { model_path: "/m" } }, HandlerSection).success).toBe(true);
  });
});

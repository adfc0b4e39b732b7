import { describe, expect, it } from "vitest";
import { HandlerSection, parseModelConfig } from "../../../src/config/model-config.ts";

const parse = (handler: Record<string, unknown>, top: Record<string, unknown> = {}) =>
  parseModelConfig({ ...top, handler: { model_path: "/m", ...handler } }, HandlerSection);

const problems = (result: ReturnType<typeof parse>) =>
  result.success ? [] : result.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);

describe("handler.engine", () => {
  it("defaults to the transformers engine and takes vllm", () => {
    expect(parse({}).data?.handler.engine).toBe("transformers");
    expect(parse({ engine: "vllm" }).data?.handler.engine).toBe("vllm");
    expect(problems(parse({ engine: "tgi" }))[0]).toMatch(/^handler\.engine: /);
  });

  it("refuses what the vLLM engine cannot serve, naming the key and the way out", () => {
    expect(problems(parse({ engine: "vllm", gguf_file: "m.gguf" }))).toEqual([
      expect.stringMatching(/^handler\.gguf_file: .*GGUF.*engine: transformers/),
    ]);
    for (const quantize of ["int8", "fp4", "nf4"]) {
      for (const deviceType of ["cpu", "gpu"]) {
        expect(problems(parse({ engine: "vllm", quantize }, { deviceType }))).toEqual([
          expect.stringMatching(
            new RegExp(
              `^handler\\.quantize: ${quantize} is bitsandbytes quantization, which vLLM 0\\.32 does not have .*engine: transformers`,
            ),
          ),
        ]);
      }
    }
    expect(problems(parse({ engine: "vllm", double_quant: true }))).toEqual([
      expect.stringMatching(/^handler\.double_quant: .*engine: transformers/),
    ]);
  });

  it("lets the transformers engine serve all of them", () => {
    expect(problems(parse({ engine: "transformers", gguf_file: "m.gguf", quantize: "int8" }, { deviceType: "cpu" }))).toEqual([]);
    expect(problems(parse({ engine: "transformers", quantize: "nf4", double_quant: true }, { deviceType: "gpu" }))).toEqual([]);
  });
});

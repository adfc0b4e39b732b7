import { describe, expect, it } from "vitest";
import { HandlerSection, parseModelConfig } from "../../../src/config/model-config.ts";
import { vllmWorkerIssues } from "../../../src/config/engine-support.ts";

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

describe("vLLM workers and GPU groups", () => {
  const workerIssues = (gpus: number, perModel: number, top: Record<string, unknown>) =>
    vllmWorkerIssues(top, { engine: "vllm", num_gpu_per_model: perModel }, gpus).map((i) => `${i.path.join(".")}: ${i.message}`);

  it("gives each worker a group of its own on 1, 2 and 8 GPUs, for models of 1 to 8 GPUs", () => {
    for (const [gpus, perModel, groups] of [
      [1, 1, 1],
      [2, 1, 2],
      [2, 2, 1],
      [8, 1, 8],
      [8, 2, 4],
      [8, 4, 2],
      [8, 8, 1],
    ] as const) {
      expect(workerIssues(gpus, perModel, { minWorkers: 1, maxWorkers: groups })).toEqual([]);
      expect(workerIssues(gpus, perModel, { minWorkers: 1, maxWorkers: groups + 1 })).toEqual([
        `maxWorkers: ${groups + 1} worker(s) but ${gpus} GPU(s) make only ${groups} group(s) of handler.num_gpu_per_model ${perModel}; ` +
          `on the vLLM engine each worker needs a group of its own: set maxWorkers (and minWorkers) to at most ${groups}`,
      ]);
    }
  });

  it("counts TorchServe's default of one worker per GPU, and leaves CPU workers and the transformers engine alone", () => {
    expect(workerIssues(8, 1, {})).toEqual([]);
    expect(workerIssues(8, 2, {})[0]).toMatch(/^maxWorkers: 8 worker\(s\) but 8 GPU\(s\) make only 4 group\(s\)/);
    expect(workerIssues(2, 2, { minWorkers: 2 })[0]).toMatch(/^minWorkers: 2 worker\(s\)/);
    expect(workerIssues(1, 1, { deviceType: "cpu", maxWorkers: 4 })).toEqual([]);
    expect(vllmWorkerIssues({ maxWorkers: 4 }, { engine: "transformers" }, 1)).toEqual([]);
  });

  it("refuses at archive time when deviceIds lists the GPUs", () => {
    expect(problems(parse({ engine: "vllm", num_gpu_per_model: 2 }, { deviceIds: [0, 1, 2, 3], maxWorkers: 2 }))).toEqual([]);
    expect(problems(parse({ engine: "vllm", num_gpu_per_model: 2 }, { deviceIds: [0, 1, 2, 3], maxWorkers: 3 }))).toEqual([
      expect.stringMatching(/^maxWorkers: 3 worker\(s\) but 4 GPU\(s\) make only 2 group\(s\) of handler\.num_gpu_per_model 2/),
    ]);
    expect(problems(parse({ engine: "transformers", num_gpu_per_model: 2 }, { deviceIds: [0, 1, 2, 3], maxWorkers: 3 }))).toEqual([]);
  });
});

describe("handler.vllm", () => {
  it("passes vLLM's engine arguments through and refuses the ones tsserve sets, naming the key to use", () => {
    const vllm = { max_num_batched_tokens: 4096, kv_cache_dtype: "fp8", speculative_config: { method: "ngram" } };
    expect(parse({ engine: "vllm", vllm }).data?.handler.vllm).toEqual(vllm);
    expect(problems(parse({ engine: "vllm", vllm: { max_num_seqs: 8, tensor_parallel_size: 2 } }))).toEqual([
      "handler.vllm.max_num_seqs: tsserve sets it: use handler.max_num_seqs",
      "handler.vllm.tensor_parallel_size: tsserve sets it: use handler.num_gpu_per_model",
    ]);
    expect(problems(parse({ engine: "vllm", vllm: [1] }))).toEqual(["handler.vllm: must be a map of vLLM engine arguments"]);
    expect(problems(parse({ vllm: { max_num_batched_tokens: 1 } }))).toEqual([
      expect.stringMatching(/^handler\.vllm: .*set handler\.engine: vllm/),
    ]);
  });
});

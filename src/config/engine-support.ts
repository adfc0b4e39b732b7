/**
 * What the vLLM engine cannot serve, refused where the config is parsed
 * (`tsserve archive`, `tsserve kserve`, the runtime's initialize), with the key
 * named and the fix. The shim's load refuses the same settings
 * (python_shim/tsserve_shim/engine/vllm/args.py).
 */
import type { GpuLayoutIssue } from "./gpu-layout.ts";

interface EngineKeys {
  engine?: unknown;
  gguf_file?: unknown;
  quantize?: unknown;
  double_quant?: unknown;
  vllm?: unknown;
}

const USE_TRANSFORMERS = "or set handler.engine: transformers";

export function engineIssues(handler: EngineKeys): GpuLayoutIssue[] {
  if (handler.engine !== "vllm") {
    return handler.vllm === undefined
      ? []
      : [
          {
            path: ["handler", "vllm"],
            message: "holds vLLM engine arguments, which the transformers engine does not read: set handler.engine: vllm or remove it",
          },
        ];
  }
  const issues: GpuLayoutIssue[] = [];
  const refuse = (key: string, message: string) => issues.push({ path: ["handler", key], message });
  if (typeof handler.gguf_file === "string") {
    refuse("gguf_file", `the vLLM engine does not serve GGUF checkpoints: convert the model to safetensors ${USE_TRANSFORMERS}`);
  }
  const quantize = handler.quantize ?? "none";
  if (quantize !== "none") {
    refuse(
      "quantize",
      `${String(quantize)} is bitsandbytes quantization, which vLLM 0.32 does not have (it serves AWQ and GPTQ checkpoints and fp8): set handler.engine: transformers, the seed's own path for ${String(quantize)}`,
    );
  } else if (handler.double_quant === true) {
    refuse(
      "double_quant",
      `is a bitsandbytes setting, and the vLLM engine does not quantize with bitsandbytes: remove it ${USE_TRANSFORMERS}`,
    );
  }
  return issues;
}

interface WorkerKeys {
  minWorkers?: number | undefined;
  maxWorkers?: number | undefined;
  deviceType?: string | undefined;
  deviceIds?: number[] | undefined;
}

/**
 * On the vLLM engine each worker takes a GPU group of its own: vLLM's gpu_memory_utilization is a share of
 * every GPU of the group, and a second worker there finds too little free memory. `gpuCount`: the GPUs the
 * workers choose among (`deviceIds`, else the machine's); without minWorkers or maxWorkers TorchServe starts
 * one worker per GPU. The shim's load applies the same rule (model/placement.py, check_one_group_per_worker).
 */
export function vllmWorkerIssues(
  config: WorkerKeys,
  handler: EngineKeys & { num_gpu_per_model?: unknown },
  gpuCount: number,
): GpuLayoutIssue[] {
  if (handler.engine !== "vllm" || config.deviceType === "cpu") return [];
  const perModel = typeof handler.num_gpu_per_model === "number" ? handler.num_gpu_per_model : 1;
  const groups = Math.floor(gpuCount / perModel);
  const counts = [config.minWorkers, config.maxWorkers].filter((n): n is number => typeof n === "number");
  const workers = counts.length > 0 ? Math.max(...counts) : gpuCount;
  if (workers <= groups) return [];
  const key = config.minWorkers === workers && config.maxWorkers !== workers ? "minWorkers" : "maxWorkers";
  return [
    {
      path: [key],
      message:
        `${workers} worker(s) but ${gpuCount} GPU(s) make only ${groups} group(s) of handler.num_gpu_per_model ${perModel}; ` +
        `on the vLLM engine each worker needs a group of its own: set maxWorkers (and minWorkers) to at most ${groups}`,
    },
  ];
}

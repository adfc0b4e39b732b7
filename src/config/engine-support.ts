/**
 * What the vLLM engine cannot serve, refused where the config is parsed
 * (`tsserve archive`, `tsserve kserve`, the runtime's initialize), with the key
 * named and the fix. The shim's load refuses the same settings
 * (python_shim/tsserve_shim/engine/vllm/args.py), and also `quantize: nf4` on a
 * host without CUDA, which only the serving host can tell.
 */
import type { GpuLayoutIssue } from "./gpu-layout.ts";

interface EngineKeys {
  engine?: unknown;
  gguf_file?: unknown;
  quantize?: unknown;
  double_quant?: unknown;
}

const USE_TRANSFORMERS = "or set handler.engine: transformers";

export function engineIssues(handler: EngineKeys, deviceType: string | undefined): GpuLayoutIssue[] {
  if (handler.engine !== "vllm") return [];
  const issues: GpuLayoutIssue[] = [];
  const refuse = (key: string, message: string) => issues.push({ path: ["handler", key], message });
  if (typeof handler.gguf_file === "string") {
    refuse("gguf_file", `the vLLM engine does not serve GGUF checkpoints: convert the model to safetensors ${USE_TRANSFORMERS}`);
  }
  const quantize = handler.quantize ?? "none";
  if (quantize === "int8" || quantize === "fp4") {
    refuse("quantize", `${quantize} is not served by the vLLM engine (its bitsandbytes loading quantizes to nf4 only): use nf4 ${USE_TRANSFORMERS}`);
  } else if (quantize === "nf4" && deviceType === "cpu") {
    refuse("quantize", `nf4 under the vLLM engine needs CUDA (vLLM's bitsandbytes kernels run on GPUs only), and deviceType is cpu: ${USE_TRANSFORMERS.replace("or ", "")}`);
  }
  if (handler.double_quant === true) {
    refuse("double_quant", `the vLLM engine's nf4 loading has no double quantization switch: remove it ${USE_TRANSFORMERS}`);
  }
  return issues;
}

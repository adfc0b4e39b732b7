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
}

const USE_TRANSFORMERS = "or set handler.engine: transformers";

export function engineIssues(handler: EngineKeys): GpuLayoutIssue[] {
  if (handler.engine !== "vllm") return [];
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

/**
 * JSON Schema of the model config (with the base handler section), as the
 * Python shim reads it. Exported from the zod definitions as they are accepted
 * on input (transforms such as defaults and `per_gpu_mem` folding make output
 * schemas meaningless).
 */
import { z } from "zod";
import { HandlerSection, ModelConfig } from "./model-config.ts";

export function modelConfigJsonSchema(): Record<string, unknown> {
  const modelConfig = ModelConfig.extend({ handler: HandlerSection });
  return z.toJSONSchema(modelConfig, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
}

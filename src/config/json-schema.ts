/**
 * JSON Schema of what clients and the Python shim send: the model config
 * (with the base handler section) and the completion request. Exported from
 * the zod definitions, as they are accepted on input (transforms such as
 * defaults and `per_gpu_mem` folding make output schemas meaningless).
 */
import { z } from "zod";
import { HandlerSection, ModelConfig } from "./model-config.ts";
import { CompletionRequestInput } from "../completions/request.ts";

export function exportJsonSchemas(): { modelConfig: Record<string, unknown>; completionRequest: Record<string, unknown> } {
  const modelConfig = ModelConfig.extend({ handler: HandlerSection });
  return {
    modelConfig: z.toJSONSchema(modelConfig, { io: "input", unrepresentable: "any" }) as Record<string, unknown>,
    completionRequest: z.toJSONSchema(CompletionRequestInput, { io: "input", unrepresentable: "any" }) as Record<string, unknown>,
  };
}

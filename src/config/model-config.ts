/**
 * TorchServe's model-config.yaml: the frontend's keys, and the `handler:`
 * section that the shim and the handler read. Handlers extend HandlerSection
 * with their own typed fields.
 */
import { z } from "zod";
import { parseByteSize } from "./bytes.ts";

export const Dtype = z.enum(["auto", "float16", "bfloat16", "float32"]);
export const Quantize = z.enum(["none", "int8", "fp4", "nf4"]);

const ByteSize = z.union([z.number().positive(), z.string()]).transform((value, ctx) => {
  try {
    return parseByteSize(value);
  } catch (error) {
    ctx.addIssue({ code: "custom", message: (error as Error).message });
    return z.NEVER;
  }
});

export const HandlerSection = z
  .looseObject({
    model_path: z.string().min(1),
    tokenizer_path: z.string().min(1).optional(),
    dtype: Dtype.default("auto"),
    quantize: Quantize.default("none"),
    /** Keep 4-bit double quantization off unless asked (the seed never used it). */
    double_quant: z.boolean().default(false),
    num_gpu_per_model: z.number().int().positive().default(1),
    /** Bytes per GPU: `4.8e10`, `"48GiB"`, `"45GB"`. The seed's `per_gpu_mem` is an alias. */
    gpu_max_memory: ByteSize.optional(),
    per_gpu_mem: ByteSize.optional(),
    /** The Node binary that runs the handler bundle (else $TSSERVE_NODE, else `node` on PATH). */
    node: z.string().min(1).optional(),
    /** Seconds the shim waits for the handler to answer a batch; below TorchServe's responseTimeout. */
    handle_timeout_s: z.number().positive().optional(),
  })
  .transform(({ per_gpu_mem, ...rest }) => ({ ...rest, gpu_max_memory: rest.gpu_max_memory ?? per_gpu_mem }));
export type HandlerSection = z.output<typeof HandlerSection>;

export const ModelConfig = z.looseObject({
  minWorkers: z.number().int().min(0).optional(),
  maxWorkers: z.number().int().min(0).optional(),
  batchSize: z.number().int().positive().optional(),
  maxBatchDelay: z.number().int().min(0).optional(),
  responseTimeout: z.number().int().positive().optional(),
  startupTimeout: z.number().int().positive().optional(),
  deviceType: z.enum(["cpu", "gpu", "neuron"]).optional(),
  parallelType: z.enum(["pp", "tp", "pptp", "custom"]).optional(),
  deviceIds: z.array(z.number().int().min(0)).optional(),
  torchrun: z.looseObject({ "nproc-per-node": z.number().int().positive().optional() }).optional(),
  handler: z.record(z.string(), z.unknown()),
});
export type ModelConfig = z.output<typeof ModelConfig>;

/** Parse a whole model config, its handler section with `handlerSchema`. */
export function parseModelConfig<Cfg>(raw: unknown, handlerSchema: z.ZodType<Cfg>): z.ZodSafeParseResult<ModelConfig & { handler: Cfg }> {
  const outer = ModelConfig.safeParse(raw);
  if (!outer.success) return outer as z.ZodSafeParseResult<never>;
  const inner = handlerSchema.safeParse(outer.data.handler);
  if (!inner.success) {
    for (const issue of inner.error.issues) issue.path = ["handler", ...issue.path];
    return inner as z.ZodSafeParseResult<never>;
  }
  return { success: true, data: { ...outer.data, handler: inner.data } };
}

/**
 * TorchServe's model-config.yaml: the frontend's keys, and the `handler:`
 * section that the shim and the handler read. Handlers extend HandlerSection
 * with their own typed fields.
 */
import { z } from "zod";
import path from "node:path";
import { parseByteSize } from "./bytes.ts";
import { gpuLayoutIssues } from "./gpu-layout.ts";
import { engineIssues, vllmWorkerIssues } from "./engine-support.ts";

export const Dtype = z.enum(["auto", "float16", "bfloat16", "float32"]);
export const Quantize = z.enum(["none", "int8", "fp4", "nf4"]);
/** `vllm`: vLLM's async engine, for serving. `transformers`: tsserve's reference engine (bitsandbytes on CPU, GGUF, exact `generate` parity). */
const EngineName = z.enum(["vllm", "transformers"]);

const ByteSize = z.union([z.number().positive(), z.string()]).transform((value, ctx) => {
  try {
    return parseByteSize(value);
  } catch (error) {
    ctx.addIssue({ code: "custom", message: (error as Error).message });
    return z.NEVER;
  }
});

/** vLLM's engine arguments that tsserve sets from its own keys: each with the handler key to use instead. */
const VLLM_ARGS_TSSERVE_SETS = {
  model: "model_path",
  tokenizer: "tokenizer_path",
  dtype: "dtype",
  max_num_seqs: "max_num_seqs",
  max_model_len: "max_model_len",
  enable_prefix_caching: "prefix_cache_mb",
  enforce_eager: "enforce_eager",
  tensor_parallel_size: "num_gpu_per_model",
  gpu_memory_utilization: "gpu_max_memory",
  kv_cache_memory_bytes: "kv_cache_mb",
} as const;

/**
 * `handler.vllm`: vLLM engine arguments (AsyncEngineArgs' names) passed through as they are. The ones
 * tsserve sets are refused naming the handler key to use; the shim reads them (and `tsserve_key`) from
 * the exported schema.
 */
const VllmEngineArgs = z.looseObject(
  Object.fromEntries(
    Object.entries(VLLM_ARGS_TSSERVE_SETS).map(([arg, key]) => [
      arg,
      z
        .never({ error: `tsserve sets it: use handler.${key}` })
        .optional()
        .meta({ tsserve_key: key }),
    ]),
  ),
  { error: "must be a map of vLLM engine arguments" },
);

/** The fields every handler section has; extend them with `extendHandlerSection`. */
export const HandlerSectionFields = {
  /**
   * The checkpoint folder. A relative path resolves against the folder of the
   * model-config.yaml that names it (see `resolveModelPath`).
   */
  model_path: z.string().min(1),
  /** Which engine runs the model (docs/model-config.md says what each serves). */
  engine: EngineName.default("transformers"),
  tokenizer_path: z.string().min(1).optional(),
  /** A GGUF checkpoint: a file name inside `model_path`, or a path (resolved like `model_path`); loaded through transformers' GGUF support. */
  gguf_file: z.string().min(1).optional(),
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
  /** torch intra-op threads for a CPU worker (default: $OMP_NUM_THREADS, else every CPU the worker may use but one). */
  cpu_threads: z.number().int().positive().optional(),
  /** The most rows (sequences) the engine decodes at once, as vLLM's max_num_seqs; requests beyond wait their turn. */
  max_num_seqs: z.number().int().positive().default(64),
  /** The most rows (prompts × n × best_of) one request may ask for (default: max_num_seqs); a wider request is a 400. */
  max_rows_per_request: z.number().int().positive().optional(),
  /**
   * Transformers engine: prompt tokens (rows × positions) one prefill forward takes; a longer prompt is
   * prefilled in chunks, the running streams getting a token between two (docs/batching.md, "Long prompts").
   */
  prefill_chunk_tokens: z.number().int().positive().default(256),
  /**
   * Bytes one request may stream: TorchServe holds what its client has not read yet, so past this the stream
   * ends with a 413 error line and its generation stops (docs/operations.md, "Disconnects and slow clients").
   */
  max_stream_bytes: z.number().int().positive().default(4194304),
  /** MiB of KV the engine keeps for prompt prefixes it computed (reused by later prompts that begin with them); 0 turns prefix caching off. */
  prefix_cache_mb: z.number().min(0).default(512),
  /** The longest prompt + generation served (default: the model's own context length), as vLLM's max_model_len. */
  max_model_len: z.number().int().positive().optional(),
  /** MiB of KV cache: the vLLM engine's KV cache size (on a CPU, default 1024); the transformers engine's KV budget. */
  kv_cache_mb: z.number().positive().optional(),
  /** vLLM only: skip torch.compile and CUDA graphs (starts in about a third of the time, decodes slower). */
  enforce_eager: z.boolean().default(false),
  /** vLLM only: more of vLLM's engine arguments (`max_num_batched_tokens`, `kv_cache_dtype`, `speculative_config`, ...). */
  vllm: VllmEngineArgs.optional(),
} satisfies z.ZodRawShape;

/**
 * A handler section with more typed fields: `extendHandlerSection({ chat_template: z.string().optional() })`.
 * Unknown keys are kept, and `per_gpu_mem` folds into `gpu_max_memory`.
 */
export function extendHandlerSection<Extra extends z.ZodRawShape>(extra: Extra) {
  return z.looseObject({ ...HandlerSectionFields, ...extra }).transform((section) => {
    // Spread, not rest-destructuring: Omit<> over a loose object's index signature would erase the known keys' types.
    const out = { ...section, gpu_max_memory: section.gpu_max_memory ?? section.per_gpu_mem };
    delete out.per_gpu_mem;
    return out;
  });
}

export const HandlerSection = extendHandlerSection({});
export type HandlerSection = z.output<typeof HandlerSection>;

export const ModelConfig = z.looseObject({
  minWorkers: z.number().int().min(0).optional(),
  maxWorkers: z.number().int().min(0).optional(),
  batchSize: z.number().int().positive().optional(),
  /** Continuous batching: TorchServe's async worker hands each request to the shim as it arrives. */
  asyncCommunication: z.boolean().optional(),
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

/** TorchServe 0.12's AsyncBatchAggregator cannot take two jobs at once (see the message). */
function batchingIssues(config: ModelConfig): { path: (string | number)[]; message: string }[] {
  if (config.asyncCommunication !== true || (config.batchSize ?? 1) <= 1) return [];
  return [
    {
      path: ["batchSize"],
      message:
        "must be 1 with asyncCommunication: true: TorchServe 0.12's AsyncBatchAggregator fails with a ConcurrentModificationException " +
        "(and restarts the worker) when it takes two jobs at once; the engine batches the requests itself",
    },
  ];
}

/**
 * Parse a whole model config, its handler section with `handlerSchema`; a GPU
 * layout TorchServe cannot give a worker (see gpu-layout.ts) and a setting the
 * chosen engine cannot serve (engine-support.ts) are refused too.
 */
export function parseModelConfig<Cfg>(raw: unknown, handlerSchema: z.ZodType<Cfg>): z.ZodSafeParseResult<ModelConfig & { handler: Cfg }> {
  const outer = ModelConfig.safeParse(raw);
  if (!outer.success) return outer as z.ZodSafeParseResult<never>;
  const inner = handlerSchema.safeParse(outer.data.handler);
  if (!inner.success) {
    const issues = inner.error.issues.map((issue) => ({ ...issue, path: ["handler", ...issue.path] }));
    return { success: false, error: new z.ZodError(issues) } as z.ZodSafeParseResult<never>;
  }
  const perModel = (inner.data as { num_gpu_per_model?: unknown }).num_gpu_per_model;
  const layout = [
    ...batchingIssues(outer.data),
    ...gpuLayoutIssues(outer.data, typeof perModel === "number" ? perModel : 1),
    ...engineIssues(inner.data as Record<string, unknown>),
    // The GPUs are known here only when deviceIds lists them; the shim's load checks the machine's.
    ...(outer.data.deviceIds?.length
      ? vllmWorkerIssues(outer.data, inner.data as Record<string, unknown>, outer.data.deviceIds.length)
      : []),
  ];
  if (layout.length > 0) {
    const issues = layout.map((issue) => ({ code: "custom" as const, input: raw, ...issue }));
    return { success: false, error: new z.ZodError(issues) } as z.ZodSafeParseResult<never>;
  }
  return { success: true, data: { ...outer.data, handler: inner.data } as ModelConfig & { handler: Cfg } };
}

/**
 * Where a config's `model_path` (or `tokenizer_path`) points: an absolute path
 * as is; a relative one against the folder of the config file that names it
 * (so `model_path: ../.cache/tiny-llama` in `configs/x.yaml` is
 * `<repo>/.cache/tiny-llama`, wherever the command runs). `~/` is the home
 * folder. The Python shim applies the same rule.
 */
export function resolveModelPath(configFile: string, modelPath: string): string {
  if (modelPath === "~" || modelPath.startsWith("~/")) {
    return path.join(process.env.HOME ?? "", modelPath.slice(1));
  }
  if (path.isAbsolute(modelPath)) return path.normalize(modelPath);
  return path.resolve(path.dirname(path.resolve(configFile)), modelPath);
}

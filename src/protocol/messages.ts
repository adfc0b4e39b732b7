/**
 * Every message that crosses the stdio channel between the Python shim and the
 * Node runtime, defined once. The Python half is checked against the JSON
 * Schema exported from these definitions (protocol.schema.json).
 */
import { z } from "zod";

export const PROTOCOL_VERSION = 1;

// ---------------------------------------------------------------- envelopes

export const RequestId = z.union([z.number().int(), z.string()]);

const ErrorObject = z.strictObject({
  code: z.number().int(),
  message: z.string(),
  data: z.unknown().optional(),
});

export const JsonRpcRequest = z.strictObject({
  jsonrpc: z.literal("2.0"),
  id: RequestId,
  method: z.string(),
  params: z.unknown().optional(),
});

export const JsonRpcNotification = z.strictObject({
  jsonrpc: z.literal("2.0"),
  method: z.string(),
  params: z.unknown().optional(),
});

export const JsonRpcSuccess = z.strictObject({
  jsonrpc: z.literal("2.0"),
  id: RequestId,
  result: z.unknown(),
});

export const JsonRpcError = z.strictObject({
  jsonrpc: z.literal("2.0"),
  id: RequestId.nullable(),
  error: ErrorObject,
});

export const JsonRpcMessage = z.union([JsonRpcRequest, JsonRpcNotification, JsonRpcSuccess, JsonRpcError]);

export type RequestId = z.infer<typeof RequestId>;
export type JsonRpcRequest = z.infer<typeof JsonRpcRequest>;
export type JsonRpcNotification = z.infer<typeof JsonRpcNotification>;
export type JsonRpcSuccess = z.infer<typeof JsonRpcSuccess>;
export type JsonRpcError = z.infer<typeof JsonRpcError>;
export type JsonRpcMessage = z.infer<typeof JsonRpcMessage>;

// ------------------------------------------------------- shim -> node methods

/** Facts about the loaded model that the text side needs (context length, special tokens). */
export const ModelInfo = z.strictObject({
  name_or_path: z.string(),
  context_length: z.number().int().positive(),
  vocab_size: z.number().int().positive(),
  bos_token: z.string().nullable(),
  eos_token: z.string().nullable(),
  chat_template: z.string().nullable(),
  device: z.string(),
});
export type ModelInfo = z.infer<typeof ModelInfo>;

export const InitializeParams = z.strictObject({
  protocol_version: z.number().int(),
  model_name: z.string(),
  model_dir: z.string(),
  gpu_id: z.number().int().nullable(),
  batch_size: z.number().int().positive(),
  /** The whole model-config.yaml as TorchServe parsed it. */
  model_config: z.record(z.string(), z.unknown()),
  model_info: ModelInfo,
});
export const InitializeResult = z.strictObject({
  protocol_version: z.number().int(),
  handler: z.string(),
});

/** One HTTP request of a TorchServe batch: its body as the shim received it. */
export const IncomingRequest = z.strictObject({
  /** Parsed JSON when the body was JSON, else the raw text (or null when empty). */
  body: z.unknown(),
  /** Set when the body could not be read as JSON; the runtime refuses it with this message. */
  body_error: z.string().optional(),
  request_id: z.string().optional(),
  /**
   * The sub-path after `/predictions/<model>/<version>/` (TorchServe's `url_path`
   * request header, no leading slash): the handler route that answers. Absent
   * or empty: the model's own path.
   */
  url_path: z.string().optional(),
});
export type IncomingRequest = z.infer<typeof IncomingRequest>;

export const HandleParams = z.strictObject({
  batch_id: z.number().int(),
  requests: z.array(IncomingRequest),
});

/** With `content_type` set, a body is a string sent as it is (server-sent events); without, JSON. */
// TorchServe 0.12 frames a content type by its length in characters but writes it as UTF-8: anything
// but printable ASCII would misframe the reply and the frontend would drop the worker.
const ContentType = z.string().regex(/^[\x21-\x7e][\x20-\x7e]*$/, "a content type is printable ASCII");

export const RequestOutcome = z.discriminatedUnion("ok", [
  z.strictObject({ ok: z.literal(true), body: z.unknown(), content_type: ContentType.optional() }),
  z.strictObject({
    ok: z.literal(false),
    status: z.number().int().min(400).max(599),
    message: z.string(),
    field: z.string().optional(),
    /** The error body to send instead of `{"error": {code, message, field}}` (a route's own error shape). */
    body: z.unknown().optional(),
  }),
]);
export type RequestOutcome = z.infer<typeof RequestOutcome>;

export const HandleResult = z.strictObject({ responses: z.array(RequestOutcome) });

/** A health check and the benchmark's round trip: the payload comes back unchanged. */
export const PingParams = z.strictObject({ payload: z.string() });
export const PingResult = z.strictObject({ payload: z.string() });

export const ShutdownParams = z.strictObject({});
export const ShutdownResult = z.strictObject({});

// ------------------------------------------------------- node -> shim methods

/**
 * What a generation is constrained to (structured output): exactly one of a
 * JSON Schema, any JSON object, a regular expression, or one string of a list.
 * The engine masks every token that would leave the language, so the text is
 * valid once the sequence ends by itself (finish_reason "stop"); a sequence cut
 * by max_tokens ("length") holds a valid prefix only.
 */
export const StructuredOutput = z.union([
  z.strictObject({ json_schema: z.record(z.string(), z.unknown()) }),
  z.strictObject({ json_object: z.literal(true) }),
  z.strictObject({ regex: z.string().min(1) }),
  z.strictObject({ choice: z.array(z.string().min(1)).min(1) }),
]);
export type StructuredOutput = z.infer<typeof StructuredOutput>;

/**
 * [start, end) ranges of a prompt, in Unicode code points, that are content
 * (chat messages): the text of a control token inside one (`<|im_end|>`,
 * `</s>`) is tokenized as plain text, so that a message cannot forge a turn.
 */
export const LiteralSpans = z.array(z.tuple([z.number().int().min(0), z.number().int().min(0)]));
export type LiteralSpans = z.infer<typeof LiteralSpans>;

/** A metrics label value: short, and plain enough for every metrics backend. */
export const MetricsStage = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "a stage is 1 to 64 letters, digits, '_', '.' or '-'");

export const GenerateRequest = z.strictObject({
  prompt: z.string(),
  /**
   * The prompt as token ids, when the client sent ids: the model gets these,
   * never a re-tokenization of `prompt`, which is then their text (for echo).
   */
  prompt_token_ids: z.array(z.number().int().min(0)).optional(),
  /** Content spans of `prompt` (LiteralSpans). */
  literal_spans: LiteralSpans.optional(),
  max_tokens: z.number().int().min(0),
  temperature: z.number().min(0),
  top_p: z.number().min(0).max(1),
  top_k: z.number().int().min(0),
  repetition_penalty: z.number().positive(),
  seed: z.number().int().nullable(),
  stop: z.array(z.string()),
  /**
   * How many alternatives to report per token (0 = only the chosen token's logprob); null: none are
   * reported, so the engine need not compute them (the sequences' logprobs are then 0).
   */
  logprobs: z.number().int().min(0).max(20).nullable(),
  /** Sequences to sample for this prompt. */
  num_sequences: z.number().int().min(1),
  /** Also score the prompt's own tokens (echo). */
  echo: z.boolean(),
  /** Send each new piece of text as a `stream` notification while generating. */
  stream: z.boolean(),
  /** Constrain the generated text (structured output); absent: free text. */
  structured: StructuredOutput.optional(),
  /**
   * The handler stage this model call serves, where a handler makes several (AgentInstruct's
   * `explanation` and `answer`): the `stage` label of its metrics. Absent: `main`.
   */
  stage: MetricsStage.optional(),
});
export type GenerateRequest = z.infer<typeof GenerateRequest>;

export const TokenLogprobs = z.strictObject({
  tokens: z.array(z.string()),
  token_ids: z.array(z.number().int()),
  token_logprobs: z.array(z.number().nullable()),
  top_logprobs: z.array(z.record(z.string(), z.number()).nullable()),
  text_offset: z.array(z.number().int()),
});
export type TokenLogprobs = z.infer<typeof TokenLogprobs>;

export const Sequence = z.strictObject({
  text: z.string(),
  finish_reason: z.enum(["stop", "length"]),
  logprobs: TokenLogprobs,
  cumulative_logprob: z.number(),
  /**
   * Tokens the engine generated for this sequence, the EOS or the token that completed a stop sequence
   * included (vLLM's `completion_tokens`); `logprobs.tokens` holds only those before the stop.
   */
  generated_tokens: z.number().int().min(0).optional(),
});
export type Sequence = z.infer<typeof Sequence>;

export const GenerateOutcome = z.discriminatedUnion("ok", [
  z.strictObject({
    ok: z.literal(true),
    prompt: TokenLogprobs,
    sequences: z.array(Sequence),
    prompt_tokens: z.number().int(),
    /** Of the prompt tokens, those whose KV came from the engine's prefix cache. */
    cached_tokens: z.number().int().min(0).optional(),
    compute_time: z.number(),
  }),
  z.strictObject({
    ok: z.literal(false),
    status: z.number().int().min(400).max(599),
    message: z.string(),
    /** The GenerateRequest field a refusal is about (`prompt`, `max_tokens`, `temperature`, `n`), when it is about one. */
    field: z.string().optional(),
  }),
]);
export type GenerateOutcome = z.infer<typeof GenerateOutcome>;

export const GenerateParams = z.strictObject({
  /** Unique per generate call; `generation/delta` notifications carry it back. */
  call_id: z.number().int(),
  /** The handle call this generate serves: its deadline (from the request's arrival) and its cancellation. */
  batch_id: z.number().int().optional(),
  requests: z.array(GenerateRequest),
});
export const GenerateResult = z.strictObject({ outcomes: z.array(GenerateOutcome) });

export const TokenizeParams = z.strictObject({
  texts: z.array(z.string()),
  add_special_tokens: z.boolean(),
  /** Per text, the spans tokenized as plain text, as a GenerateRequest's `literal_spans` are (absent: none). */
  literal_spans: z.array(LiteralSpans).optional(),
});
export const TokenizeResult = z.strictObject({ ids: z.array(z.array(z.number().int())) });

export const DetokenizeParams = z.strictObject({
  ids: z.array(z.array(z.number().int())),
  skip_special_tokens: z.boolean(),
});
export const DetokenizeResult = z.strictObject({ texts: z.array(z.string()) });

/** Shim -> node notification: new text for one generate request while it runs. */
export const GenerationDeltaParams = z.strictObject({
  call_id: z.number().int(),
  /** Index into the generate call's `requests`. */
  request_index: z.number().int(),
  sequence_index: z.number().int(),
  text: z.string(),
  logprobs: TokenLogprobs.nullable(),
});
export type GenerationDelta = z.infer<typeof GenerationDeltaParams>;

/**
 * Either side -> the other: stop working on a request you are serving (its
 * sender no longer wants the answer), as the Model Context Protocol's
 * `notifications/cancelled`. The shim sends it for a `handle` whose HTTP request
 * ran out of time or whose client went away (the handler's stages and its
 * generate calls see an aborted AbortSignal); Node sends it for a `generate`
 * whose signal aborted (the engine drops its rows). The request is still
 * answered (an error, or whatever was done), and a late answer is ignored.
 */
export const CancelledParams = z.strictObject({
  /** The JSON-RPC id of the request to cancel, as its sender assigned it. */
  request_id: RequestId,
  /** Why, for logs and for the error the cancelled work sees. */
  reason: z.string().optional(),
});
export type CancelledParams = z.infer<typeof CancelledParams>;

/** Node -> shim notification: send this chunk to the HTTP client now (TorchServe intermediate response). */
export const StreamChunkParams = z.strictObject({
  batch_id: z.number().int(),
  request_index: z.number().int(),
  body: z.unknown(),
  content_type: ContentType.optional(),
});

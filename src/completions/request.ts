/**
 * The completion request: the seed's fields, what HELM's client sends, and
 * `messages` as the alternative to `prompt`. `null` means absent; unknown keys
 * are accepted and ignored (HELM sends extra ones). Every refusal names its
 * field: `max_tokens: must be ≥ 0`.
 *
 * Defaults follow the seed's handlers: seed 0, max_tokens 16, temperature 0.8,
 * top_p 0.0, top_k 50, repetition_penalty 1.0, logprobs 0, stop [], n 1,
 * best_of = n, echo false, stream false.
 *
 * `top_p: 0` (the seed's default) keeps only the most likely token, as the
 * seed's transformers did (`TopPLogitsWarper(0.0)`) and OpenAI does; `top_p: 1`
 * is off. A temperature below 1e-5 (0 included) means greedy decoding;
 * `top_k: 0` disables top-k (tokens tied with the k-th are kept).
 */
import { z } from "zod";
import type { ChatMessage } from "../prompts/messages.ts";
import { isPlainObject } from "../protocol/guards.ts";
import type { StructuredOutput } from "../protocol/messages.ts";

export const REQUEST_DEFAULTS = {
  seed: 0,
  max_tokens: 16,
  temperature: 0.8,
  top_p: 0.0,
  top_k: 50,
  repetition_penalty: 1.0,
  logprobs: 0,
  n: 1,
  echo: false,
  stream: false,
} as const;

export const REQUEST_LIMITS = {
  maxTemperature: 2,
  maxLogprobs: 20,
  /** OpenAI's limit for `best_of` (and so `n`): each sequence costs a row of the batch. */
  maxBestOf: 20,
  maxStopSequences: 16,
  maxStopLength: 256,
} as const;

const codePoints = (s: string) => [...s].length;

const absent = <T extends z.ZodType>(schema: T) => schema.nullable().optional();

/** JSON numbers reach the handler as JavaScript numbers: an integer beyond 2^53 - 1 has lost its exact value. */
const int = (what = "an integer") =>
  z.number({ error: "must be a number" }).int({
    error: (issue) => (Number.isInteger(issue.input) ? `must be ${what} from -(2^53 - 1) to 2^53 - 1` : `must be ${what}`),
  });
const bool = () => z.boolean({ error: "must be true or false" });

export const ChatMessageSchema = z.looseObject({
  role: z.enum(["system", "user", "assistant"], { error: 'must be one of "system", "user", "assistant"' }),
  content: z.string({ error: "must be a string" }),
});

const StopSequence = z
  .string({ error: "must be a string" })
  .min(1, { error: "must not be empty" })
  .refine((s) => codePoints(s) <= REQUEST_LIMITS.maxStopLength, {
    error: `must be at most ${REQUEST_LIMITS.maxStopLength} characters`,
  });

/** The request as it arrives (the JSON Schema of this is what clients see). */
export const CompletionRequestFields = {
  prompt: absent(z.string({ error: "must be a string" })),
  messages: absent(
    z.array(ChatMessageSchema, { error: "must be a list of {role, content}" }).min(1, { error: "must contain at least one message" }),
  ),
  seed: absent(int()),
  max_tokens: absent(int().min(0, { error: "must be ≥ 0" })),
  temperature: absent(
    z
      .number({ error: "must be a finite number" })
      .min(0, { error: "must be ≥ 0" })
      .max(REQUEST_LIMITS.maxTemperature, { error: `must be ≤ ${REQUEST_LIMITS.maxTemperature}` }),
  ),
  top_p: absent(z.number({ error: "must be a number" }).min(0, { error: "must be ≥ 0" }).max(1, { error: "must be ≤ 1" })),
  top_k: absent(int().min(0, { error: "must be ≥ 0" })),
  repetition_penalty: absent(z.number({ error: "must be a number" }).positive({ error: "must be > 0" })),
  logprobs: absent(
    int()
      .min(0, { error: "must be ≥ 0" })
      .max(REQUEST_LIMITS.maxLogprobs, { error: `must be ≤ ${REQUEST_LIMITS.maxLogprobs}` }),
  ),
  stop: absent(
    z.union([StopSequence, z.array(StopSequence, { error: "must be a string or a list of strings" })], {
      error: "must be a string or a list of strings",
    }),
  ),
  model: absent(z.string({ error: "must be a string" })),
  n: absent(
    int()
      .min(1, { error: "must be ≥ 1" })
      .max(REQUEST_LIMITS.maxBestOf, { error: `must be ≤ ${REQUEST_LIMITS.maxBestOf}` }),
  ),
  best_of: absent(
    int()
      .min(1, { error: "must be ≥ 1" })
      .max(REQUEST_LIMITS.maxBestOf, { error: `must be ≤ ${REQUEST_LIMITS.maxBestOf}` }),
  ),
  echo: absent(bool()),
  stream: absent(bool()),
} satisfies z.ZodRawShape;

export const CompletionRequestInput = z.looseObject(CompletionRequestFields, { error: "must be a JSON object" });
export type CompletionRequestInput = z.input<typeof CompletionRequestInput>;

/** A validated request with every default filled in. Exactly one of `prompt` and `messages` is set. */
export interface CompletionRequest {
  prompt?: string;
  messages?: ChatMessage[];
  /** null: unseeded (the OpenAI routes, when the client gives no seed); the seed's route defaults to 0. */
  seed: number | null;
  max_tokens: number;
  temperature: number;
  top_p: number;
  top_k: number;
  repetition_penalty: number;
  logprobs: number;
  stop: string[];
  model?: string;
  n: number;
  best_of: number;
  echo: boolean;
  stream: boolean;
  /** What the text is constrained to (set by the OpenAI routes from `response_format` and vLLM's extras). */
  structured?: StructuredOutput;
  /** false: the client asked for no logprobs (the OpenAI routes), so the engine need not compute them; the seed's route always reports them. */
  logprobs_wanted?: boolean;
}

type Raw = z.output<typeof CompletionRequestInput>;

function crossFieldIssues(r: Raw): { path: string; message: string }[] {
  const issues: { path: string; message: string }[] = [];
  const hasPrompt = r.prompt != null;
  const hasMessages = r.messages != null;
  if (hasPrompt && hasMessages) issues.push({ path: "messages", message: "give either prompt or messages, not both" });
  if (!hasPrompt && !hasMessages) issues.push({ path: "prompt", message: "required (or give messages instead)" });
  if (Array.isArray(r.stop) && r.stop.length > REQUEST_LIMITS.maxStopSequences) {
    issues.push({ path: "stop", message: `must contain at most ${REQUEST_LIMITS.maxStopSequences} sequences` });
  }
  const n = r.n ?? REQUEST_DEFAULTS.n;
  const bestOf = r.best_of ?? n;
  const temperature = r.temperature ?? REQUEST_DEFAULTS.temperature;
  if (bestOf < n) issues.push({ path: "best_of", message: `must be ≥ n (${n})` });
  if (temperature === 0 && n > 1) {
    issues.push({ path: "n", message: "must be 1 when temperature is 0 (greedy decoding gives identical choices)" });
  } else if (temperature === 0 && bestOf > 1) {
    issues.push({ path: "best_of", message: "must be 1 when temperature is 0 (greedy decoding gives identical choices)" });
  }
  if (r.stream === true && bestOf > n) {
    issues.push({ path: "best_of", message: "must equal n when stream is true (the best choices are known only at the end)" });
  }
  if (r.stream === true && r.echo === true) issues.push({ path: "echo", message: "is not supported with stream" });
  return issues;
}

function normalize(r: Raw): CompletionRequest {
  const n = r.n ?? REQUEST_DEFAULTS.n;
  const out: CompletionRequest = {
    seed: r.seed ?? REQUEST_DEFAULTS.seed,
    max_tokens: r.max_tokens ?? REQUEST_DEFAULTS.max_tokens,
    temperature: r.temperature ?? REQUEST_DEFAULTS.temperature,
    top_p: r.top_p ?? REQUEST_DEFAULTS.top_p,
    top_k: r.top_k ?? REQUEST_DEFAULTS.top_k,
    repetition_penalty: r.repetition_penalty ?? REQUEST_DEFAULTS.repetition_penalty,
    logprobs: r.logprobs ?? REQUEST_DEFAULTS.logprobs,
    stop: r.stop == null ? [] : typeof r.stop === "string" ? [r.stop] : [...r.stop],
    n,
    best_of: r.best_of ?? n,
    echo: r.echo ?? REQUEST_DEFAULTS.echo,
    stream: r.stream ?? REQUEST_DEFAULTS.stream,
  };
  if (r.prompt != null) out.prompt = r.prompt;
  if (r.messages != null) out.messages = r.messages.map((m) => ({ role: m.role, content: m.content }));
  if (r.model != null) out.model = r.model;
  return out;
}

const isSafeInt = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v);
const isFiniteNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const inRange = (v: number, min: number, max: number) => v >= min && v <= max;
const isStopSequence = (s: unknown): boolean =>
  typeof s === "string" && s.length >= 1 && (s.length <= REQUEST_LIMITS.maxStopLength || codePoints(s) <= REQUEST_LIMITS.maxStopLength);
const isChatMessage = (m: unknown): boolean =>
  isPlainObject(m) && (m.role === "system" || m.role === "user" || m.role === "assistant") && typeof m.content === "string";

/** Per known field: does a present, non-null value pass the schema's check of that field? */
const PLAIN_FIELD_CHECKS: { [K in keyof typeof CompletionRequestFields]: (v: unknown) => boolean } = {
  prompt: (v) => typeof v === "string",
  messages: (v) => Array.isArray(v) && v.length >= 1 && v.every(isChatMessage),
  seed: isSafeInt,
  max_tokens: (v) => isSafeInt(v) && v >= 0,
  temperature: (v) => isFiniteNumber(v) && inRange(v, 0, REQUEST_LIMITS.maxTemperature),
  top_p: (v) => isFiniteNumber(v) && inRange(v, 0, 1),
  top_k: (v) => isSafeInt(v) && v >= 0,
  repetition_penalty: (v) => isFiniteNumber(v) && v > 0,
  logprobs: (v) => isSafeInt(v) && inRange(v, 0, REQUEST_LIMITS.maxLogprobs),
  stop: (v) => isStopSequence(v) || (Array.isArray(v) && v.every(isStopSequence)),
  model: (v) => typeof v === "string",
  n: (v) => isSafeInt(v) && inRange(v, 1, REQUEST_LIMITS.maxBestOf),
  best_of: (v) => isSafeInt(v) && inRange(v, 1, REQUEST_LIMITS.maxBestOf),
  echo: (v) => typeof v === "boolean",
  stream: (v) => typeof v === "boolean",
};
const PLAIN_FIELDS = Object.entries(PLAIN_FIELD_CHECKS);

/**
 * The hot path of request validation: for a body the schema accepts, the same
 * CompletionRequest without running zod (a cold zod parse cost the Node child
 * more than the rest of a request's formatting). For anything the schema
 * refuses it gives undefined, and the schema is asked for the message. The
 * property test in test/unit/completions/request.property.test.ts holds the
 * two to the same answers.
 */
export function parsePlainCompletionRequest(body: unknown): CompletionRequest | undefined {
  if (!isPlainObject(body)) return undefined;
  for (const [field, check] of PLAIN_FIELDS) {
    const value = body[field];
    if (value != null && !check(value)) return undefined;
  }
  const raw = body as Raw;
  return crossFieldIssues(raw).length === 0 ? normalize(raw) : undefined;
}

/**
 * Build a completion request schema. Handlers that take more fields pass them
 * in `extra`; their parsed values are kept next to the standard ones.
 */
export function completionRequestSchema<Extra extends z.ZodRawShape = Record<never, never>>(extra?: Extra) {
  const input = extra ? CompletionRequestInput.extend(extra) : CompletionRequestInput;
  return input
    .superRefine((raw, ctx) => {
      for (const issue of crossFieldIssues(raw as Raw)) {
        ctx.addIssue({ code: "custom", path: [issue.path], message: issue.message, input: raw });
      }
    })
    .transform((raw) => {
      const base = normalize(raw as Raw);
      if (!extra) return base as CompletionRequest & z.output<z.ZodObject<Extra>>;
      const extras: Record<string, unknown> = {};
      for (const key of Object.keys(extra))
        if ((raw as Record<string, unknown>)[key] !== undefined) extras[key] = (raw as Record<string, unknown>)[key];
      return { ...base, ...extras } as CompletionRequest & z.output<z.ZodObject<Extra>>;
    });
}

export const CompletionRequest = completionRequestSchema();

/**
 * Whether the engine must compute logprobs for this request: the client asked for them, the prompt is
 * scored (echo), or the best `n` of `best_of` are chosen by their cumulative logprob.
 */
export function computesLogprobs(request: CompletionRequest): boolean {
  return request.logprobs_wanted !== false || request.echo || request.best_of > request.n;
}

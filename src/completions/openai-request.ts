/**
 * OpenAI's completion and chat completion requests, mapped onto the handler's
 * own completion request. Only what OpenAI adds is checked here (the prompt's
 * forms, chat content parts, `logprobs`/`top_logprobs`, `stream_options`,
 * fields tsserve does not serve); every field the two requests share is
 * checked by the handler's `parseRequest`, so a refusal names the same field
 * on every path. OpenAI's defaults replace the seed's: temperature 1, top_p 1,
 * no top-k, no seed unless one is given; max_tokens 16 for completions
 * and CHAT_DEFAULT_MAX_TOKENS for chat.
 */
import { z } from "zod";
import { RequestFailure, isFailure } from "../handler/failure.ts";
import { parseOrFail } from "../handler/validate.ts";
import { REQUEST_LIMITS, type CompletionRequest } from "./request.ts";
import { completionPrompts, type TokenLimits } from "./completion-prompts.ts";
import { openaiStructured, STRUCTURED_FIELDS } from "./response-format.ts";
import type { StructuredOutput } from "../protocol/messages.ts";

const COMPLETION_DEFAULT_MAX_TOKENS = 16;
/** OpenAI's chat generates to the end of the context; tsserve needs a number up front. */
export const CHAT_DEFAULT_MAX_TOKENS = 256;

const absent = <T extends z.ZodType>(schema: T) => schema.nullable().optional();
const int = () => z.number({ error: "must be a number" }).int({ error: "must be an integer" });
const unsupported = (what: string) => ({ error: `is not supported by this server${what}` });

const StreamOptions = z.looseObject(
  { include_usage: absent(z.boolean({ error: "must be true or false" })) },
  { error: "must be an object" },
);

/** What OpenAI's penalties and biases may be here: absent or neutral. */
const NEUTRAL_ONLY = {
  presence_penalty: absent(z.literal(0, unsupported(" (only 0)"))),
  frequency_penalty: absent(z.literal(0, unsupported(" (only 0)"))),
  logit_bias: absent(z.record(z.string(), z.unknown()).refine((bias) => Object.keys(bias).length === 0, unsupported(" (only {})"))),
  stream_options: absent(StreamOptions),
};

/** `prompt` is checked apart (completion-prompts.ts): its forms, and token ids against the model's vocabulary. */
export const OpenAICompletionFields = z.looseObject(
  {
    suffix: absent(z.never(unsupported(""))),
    logprobs: absent(
      int()
        .min(0, { error: "must be ≥ 0" })
        .max(REQUEST_LIMITS.maxLogprobs, { error: `must be ≤ ${REQUEST_LIMITS.maxLogprobs}` }),
    ),
    ...NEUTRAL_ONLY,
  },
  { error: "must be a JSON object" },
);

const TextPart = z.looseObject({
  type: z.literal("text", { error: 'must be "text" (only text parts are supported)' }),
  text: z.string({ error: "must be a string" }),
});

const OpenAIChatMessage = z.looseObject({
  role: z.enum(["system", "developer", "user", "assistant"], { error: 'must be one of "system", "developer", "user", "assistant"' }),
  content: z.union([z.string(), z.array(TextPart)], { error: "must be a string or a list of text parts" }),
});

export const OpenAIChatFields = z.looseObject(
  {
    messages: z
      .array(OpenAIChatMessage, { error: "must be a list of {role, content}" })
      .min(1, { error: "must contain at least one message" }),
    max_completion_tokens: absent(int().min(0, { error: "must be ≥ 0" })),
    logprobs: absent(z.boolean({ error: "must be true or false" })),
    top_logprobs: absent(
      int()
        .min(0, { error: "must be ≥ 0" })
        .max(REQUEST_LIMITS.maxLogprobs, { error: `must be ≤ ${REQUEST_LIMITS.maxLogprobs}` }),
    ),
    tools: absent(z.array(z.unknown()).max(0, unsupported(""))),
    ...NEUTRAL_ONLY,
  },
  { error: "must be a JSON object" },
);

type Body = Record<string, unknown>;

/** One prompt of a call as a handler request; `tokenIds` when the client sent the prompt as token ids. */
export interface OpenAIPrompt<Req extends CompletionRequest = CompletionRequest> {
  request: Req;
  tokenIds?: number[];
}

/** One OpenAI call as the handler's requests, with what the OpenAI response needs to know. */
export interface OpenAICall<Req extends CompletionRequest = CompletionRequest> {
  /** One per prompt, in order (a chat has one). */
  prompts: OpenAIPrompt<Req>[];
  /** How many alternatives per token the client asked for; null when it asked for no logprobs. */
  logprobs: number | null;
  stream: boolean;
  /** `stream_options.include_usage`: a last chunk with `usage` before `[DONE]`. */
  includeUsage: boolean;
}

type ParseRequest<Req> = (body: unknown) => Req | RequestFailure;

/**
 * An OpenAI completion request as one handler request per prompt. A prompt
 * sent as token ids is parsed with an empty `prompt` text; the route puts the
 * ids' text in its place before the model sees it.
 */
export function parseOpenAICompletion<Req extends CompletionRequest>(
  body: unknown,
  parseRequest: ParseRequest<Req>,
  limits: TokenLimits,
): OpenAICall<Req> | RequestFailure {
  const openai = parseOrFail(OpenAICompletionFields, body);
  if (isFailure(openai)) return openai;
  const forms = completionPrompts((openai as Body).prompt, limits);
  if (isFailure(forms)) return forms;
  const structured = openaiStructured(openai as Body);
  if (isFailure(structured)) return structured;
  const logprobs = openai.logprobs ?? null;
  const shared = sharedFields(openai as Body, (openai as Body).max_tokens ?? COMPLETION_DEFAULT_MAX_TOKENS, logprobs);
  const prompts: OpenAIPrompt<Req>[] = [];
  for (const form of forms) {
    const parsed = parseRequest({ ...shared, prompt: "text" in form ? form.text : "" });
    if (isFailure(parsed)) return parsed;
    const request = asAsked(parsed, openai as Body, structured, logprobs);
    prompts.push("text" in form ? { request } : { request, tokenIds: form.tokenIds });
  }
  return { prompts, logprobs, ...streaming(openai as Body) };
}

/** An OpenAI chat completion request as one handler request with `messages`. */
export function parseOpenAIChat<Req extends CompletionRequest>(
  body: unknown,
  parseRequest: ParseRequest<Req>,
): OpenAICall<Req> | RequestFailure {
  const openai = parseOrFail(OpenAIChatFields, body);
  if (isFailure(openai)) return openai;
  if (openai.top_logprobs != null && openai.logprobs !== true) {
    return RequestFailure.badRequest("top_logprobs: needs logprobs: true", "top_logprobs");
  }
  const structured = openaiStructured(openai as Body);
  if (isFailure(structured)) return structured;
  const logprobs = openai.logprobs === true ? (openai.top_logprobs ?? 0) : null;
  const maxTokens = openai.max_completion_tokens ?? (openai as Body).max_tokens ?? CHAT_DEFAULT_MAX_TOKENS;
  const { prompt: _prompt, echo: _echo, best_of: _bestOf, ...shared } = sharedFields(openai as Body, maxTokens, logprobs);
  const messages = openai.messages.map((message) => ({
    role: message.role === "developer" ? "system" : message.role,
    content: messageText(message.content),
  }));
  const request = parseRequest({ ...shared, messages });
  if (isFailure(request)) return request;
  return { prompts: [{ request: asAsked(request, openai as Body, structured, logprobs) }], logprobs, ...streaming(openai as Body) };
}

/**
 * The handler's request as the OpenAI call asked for it: unseeded unless the client gave a seed (the
 * seed's route defaults to seed 0; vLLM samples unseeded requests together, without a generator each),
 * with the call's structured output (the text is constrained to it), and saying whether the client
 * asked for logprobs (vLLM computes none for a request that reports none).
 */
function asAsked<Req extends CompletionRequest>(
  request: Req,
  body: Body,
  structured: StructuredOutput | undefined,
  logprobs: number | null,
): Req {
  const seeded = { ...request, seed: typeof body.seed === "number" ? body.seed : null, logprobs_wanted: logprobs !== null };
  return structured === undefined ? seeded : { ...seeded, structured };
}

/** A message's content as one string (text parts joined). */
function messageText(content: string | { text: string }[]): string {
  return typeof content === "string" ? content : content.map((part) => part.text).join("");
}

/**
 * The body as the handler's request sees it: OpenAI's defaults where a field
 * is absent, the logprob count raised to at least 1 when the client asked for
 * logprobs (a streamed chunk then carries them; the response trims the
 * alternatives back), and OpenAI-only fields left out.
 */
function sharedFields(body: Body, maxTokens: unknown, logprobs: number | null): Body {
  const {
    suffix: _suffix,
    stream_options: _streamOptions,
    presence_penalty: _presence,
    frequency_penalty: _frequency,
    logit_bias: _bias,
    user: _user,
    max_completion_tokens: _maxCompletion,
    top_logprobs: _top,
    tools: _tools,
    tool_choice: _toolChoice,
    messages: _messages,
    ...rest
  } = body;
  for (const field of STRUCTURED_FIELDS) delete rest[field];
  return {
    ...rest,
    max_tokens: maxTokens,
    temperature: body.temperature ?? 1,
    top_p: body.top_p ?? 1,
    top_k: body.top_k ?? 0,
    logprobs: logprobs === null ? 0 : Math.max(1, logprobs),
  };
}

function streaming(body: Body): Pick<OpenAICall, "stream" | "includeUsage"> {
  const options = body.stream_options as { include_usage?: boolean | null } | null | undefined;
  return { stream: body.stream === true, includeUsage: body.stream === true && options?.include_usage === true };
}

/**
 * The model's tokenizer over HTTP, in vLLM's shapes, so that clients which
 * tokenize on the server (lm-evaluation-harness's `tokenizer_backend=remote`,
 * and its `auto`, which probes `tokenizer_info` and `tokenize`) work as they
 * do against vLLM. Under `/predictions/<model>/<version>/`:
 *
 * - `tokenize` (and `v1/tokenize`): `{prompt, add_special_tokens = true,
 *   return_token_strs = false}`, or `{messages, add_generation_prompt = true,
 *   add_special_tokens = false}` for the prompt the chat route would send
 *   (the handler's chat format); answers `{count, max_model_len, tokens,
 *   token_strs}`. `token_strs` are each token's own text, decoded alone.
 * - `detokenize` (and `v1/detokenize`): `{tokens}` answers `{prompt}`, special
 *   tokens kept, so that a tokenize → detokenize round trip gives the text back.
 * - `tokenizer_info` (GET): `{bos_token, eos_token, chat_template,
 *   model_max_length, vocab_size, name_or_path}`. vLLM answers with the whole
 *   tokenizer_config.json; the shim sends Node only these facts, which are
 *   what lm-eval reads (eos_token, bos_token, chat_template).
 *
 * Refusals come in OpenAI's error shape, naming the field.
 */
import { z } from "zod";
import type { StageContext } from "../handler/context.ts";
import { RequestFailure, isFailure, type Maybe } from "../handler/failure.ts";
import type { Route, RouteCall } from "../handler/route.ts";
import { parseBody } from "../handler/request-body.ts";
import { parseOrFail } from "../handler/validate.ts";
import type { CompletionStages } from "./completion-io.ts";
import { tokenIdProblem } from "./completion-prompts.ts";
import { openaiErrorBody } from "./openai-error.ts";
import { parseOpenAIChat } from "./openai-request.ts";
import type { LiteralSpans } from "../protocol/messages.ts";

export const TOKENIZER_PATHS = { tokenize: "tokenize", detokenize: "detokenize", info: "tokenizer_info" } as const;

const absent = <T extends z.ZodType>(schema: T) => schema.nullable().optional();
const bool = () => z.boolean({ error: "must be true or false" });

const TokenizeText = z.looseObject(
  {
    prompt: z.string({ error: (issue) => (issue.input === undefined ? "required (or give messages)" : "must be a string") }),
    add_special_tokens: absent(bool()),
    return_token_strs: absent(bool()),
  },
  { error: "must be a JSON object" },
);

const TokenizeChat = z.looseObject(
  {
    add_generation_prompt: absent(z.literal(true, { error: "only true is supported (the chat route always adds the generation prompt)" })),
    add_special_tokens: absent(bool()),
    return_token_strs: absent(bool()),
  },
  { error: "must be a JSON object" },
);

const Detokenize = z.looseObject(
  {
    tokens: z.array(z.unknown(), { error: (issue) => (issue.input === undefined ? "required" : "must be a list of token ids") }),
  },
  { error: "must be a JSON object" },
);

export interface TokenizeResponse {
  count: number;
  max_model_len: number;
  tokens: number[];
  token_strs: string[] | null;
}

/** The tokenizer routes of a completion handler (its chat format serves `messages`). */
export function tokenizerRoutes<Cfg>(handler: CompletionStages): Route<Cfg>[] {
  const route = (path: string, answer: (call: RouteCall, ctx: StageContext<unknown>) => Promise<Maybe<unknown>>): Route<Cfg> => ({
    path,
    handle: (calls, ctx) => Promise.all(calls.map((call) => answer(call, ctx as StageContext<unknown>).catch(RequestFailure.from))),
    errorBody: openaiErrorBody,
  });
  const tokenizeCall = (call: RouteCall, ctx: StageContext<unknown>) => tokenize(handler, call, ctx);
  return [
    route(TOKENIZER_PATHS.tokenize, tokenizeCall),
    route(`v1/${TOKENIZER_PATHS.tokenize}`, tokenizeCall),
    route(TOKENIZER_PATHS.detokenize, detokenize),
    route(`v1/${TOKENIZER_PATHS.detokenize}`, detokenize),
    route(TOKENIZER_PATHS.info, async (_call, ctx) => tokenizerInfo(ctx)),
  ];
}

async function tokenize(handler: CompletionStages, call: RouteCall, ctx: StageContext<unknown>): Promise<Maybe<TokenizeResponse>> {
  const isChat = typeof call.body === "object" && call.body !== null && "messages" in call.body;
  const schema: z.ZodType<z.output<typeof TokenizeChat> & { prompt?: string }> = isChat ? TokenizeChat : TokenizeText;
  const request = parseBody(call.body, call.bodyError, (body) => parseOrFail(schema, body));
  if (isFailure(request)) return request;
  const prompt = isChat ? await chatPrompt(handler, call.body, ctx) : { text: request.prompt!, spans: [] };
  if (isFailure(prompt)) return prompt;
  // A chat prompt's message contents are tokenized as generation tokenizes them (their control-token text as text).
  const options = {
    addSpecialTokens: request.add_special_tokens ?? !isChat,
    ...(prompt.spans.length > 0 ? { literalSpans: [prompt.spans] } : {}),
  };
  const [tokens = []] = await ctx.model.tokenize([prompt.text], options);
  const tokenStrs = request.return_token_strs ? await tokenTexts(tokens, ctx) : null;
  if (isFailure(tokenStrs)) return tokenStrs;
  return { count: tokens.length, max_model_len: ctx.model.info.context_length, tokens, token_strs: tokenStrs };
}

/** Each token's own text. The shim's refusal of the detokenize this takes (too many ids for one call) is this
 * request's 400 about `return_token_strs`, the field the client sent, not about a detokenize it never asked for. */
async function tokenTexts(tokens: number[], ctx: StageContext<unknown>): Promise<Maybe<string[]>> {
  try {
    return await ctx.model.detokenize(
      tokens.map((id) => [id]),
      { skipSpecialTokens: false },
    );
  } catch (error) {
    if (!(error instanceof RequestFailure) || error.status !== 400) throw error;
    const count = tokens.length.toLocaleString("en-US");
    return RequestFailure.badRequest(
      `return_token_strs: the prompt is ${count} tokens, too many to return each one's text in one call (${error.message}); ask without return_token_strs, or for less text`,
      "return_token_strs",
    );
  }
}

/** The prompt the chat route would send for these messages (the handler's own chat format), and its content spans. */
async function chatPrompt(
  handler: CompletionStages,
  body: unknown,
  ctx: StageContext<unknown>,
): Promise<Maybe<{ text: string; spans: LiteralSpans }>> {
  const call = parseOpenAIChat(body, (b) => handler.parseRequest(b));
  if (isFailure(call)) return call;
  const [input] = await handler.preprocess([call.prompts[0]!.request], { ...ctx, requestIndices: [0] });
  if (input === undefined) return new RequestFailure(500, "preprocess returned no input");
  return isFailure(input) ? input : { text: input.prompt, spans: input.generate.literal_spans ?? [] };
}

async function detokenize(call: RouteCall, ctx: StageContext<unknown>): Promise<Maybe<{ prompt: string }>> {
  const request = parseBody(call.body, call.bodyError, (body) => parseOrFail(Detokenize, body));
  if (isFailure(request)) return request;
  for (const [i, id] of request.tokens.entries()) {
    const problem = tokenIdProblem(id, ctx.model.info.vocab_size);
    if (problem) return RequestFailure.badRequest(`tokens.${i}: ${problem}`, `tokens.${i}`);
  }
  const [prompt = ""] = await ctx.model.detokenize([request.tokens as number[]], { skipSpecialTokens: false });
  return { prompt };
}

function tokenizerInfo(ctx: StageContext<unknown>) {
  const info = ctx.model.info;
  return {
    name_or_path: info.name_or_path,
    bos_token: info.bos_token,
    eos_token: info.eos_token,
    chat_template: info.chat_template,
    model_max_length: info.context_length,
    vocab_size: info.vocab_size,
  };
}

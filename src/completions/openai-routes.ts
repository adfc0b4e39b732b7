/**
 * The OpenAI-compatible routes every CompletionHandler answers, under
 * `/predictions/<model>/<version>/v1/`:
 *
 * - `v1/completions`: OpenAI's text completion; each prompt (text or token
 *   ids, see completion-prompts.ts) goes to the model as it is, through the
 *   handler's inference. Token ids reach the model as ids; their text (special
 *   tokens kept) is the prompt an echo shows.
 * - `v1/chat/completions`: the messages through the handler's chat format
 *   (its preprocess), then its inference.
 * - `v1/models`: the served model.
 * - `tokenize`, `detokenize`, `tokenizer_info` (and `v1/tokenize`,
 *   `v1/detokenize`): the model's tokenizer, see tokenizer-routes.ts.
 *
 * Requests of one batch to one route share one inference pass. Refusals come
 * in OpenAI's error shape; `stream: true` answers with server-sent events.
 */
import type { StageContext } from "../handler/context.ts";
import { RequestFailure, isFailure, type Maybe } from "../handler/failure.ts";
import type { Route, RouteCall } from "../handler/route.ts";
import { parseBody } from "../handler/request-body.ts";
import { runStages, type Stage, type StageBase } from "../handler/stages.ts";
import type { HandlerSection } from "../config/model-config.ts";
import type { ModelInfo } from "../protocol/messages.ts";
import { responseId, unixSeconds, type CompletionInput, type CompletionOutput, type CompletionStages } from "./completion-io.ts";
import type { CompletionChunk, CompletionResponse } from "./response.ts";
import { openaiErrorBody } from "./openai-error.ts";
import { parseOpenAIChat, parseOpenAICompletion, type OpenAICall, type OpenAIPrompt } from "./openai-request.ts";
import {
  openaiChatChunk,
  openaiChatCompletion,
  openaiChatFinish,
  openaiCompletion,
  openaiCompletionChunk,
  openaiCompletionFinish,
  sumUsage,
  type CallHeader,
} from "./openai-response.ts";
import { SSE_DONE, sseBody, sseEvent } from "./sse.ts";
import { tokenizerRoutes } from "./tokenizer-routes.ts";

export const OPENAI_PATHS = { completions: "v1/completions", chat: "v1/chat/completions", models: "v1/models" } as const;

/** How one OpenAI endpoint reads a call and writes its answer. */
interface Endpoint {
  path: string;
  idPrefix: string;
  parse(handler: CompletionStages, body: unknown, info: ModelInfo): OpenAICall | RequestFailure;
  /** The stages that turn the call's prompts into completion outputs. */
  // biome-ignore lint/suspicious/noExplicitAny: the stages serve a handler of any config
  stages(handler: CompletionStages): Stage<any>[];
  response(header: CallHeader, call: OpenAICall, bodies: CompletionResponse[]): unknown;
  chunk(header: CallHeader, call: OpenAICall, chunk: CompletionChunk, prompt: number, first: (index: number) => boolean): unknown;
  finish(header: CallHeader, call: OpenAICall, bodies: CompletionResponse[], first: (index: number) => boolean): unknown;
  object: string;
}

const inference =
  // biome-ignore lint/suspicious/noExplicitAny: the stage serves a handler of any config
    (handler: CompletionStages): Stage<any> =>
    (inputs, ctx) =>
      handler.inference(inputs, ctx);

/** `n` of a call (every prompt of a call shares it). */
const choicesPerPrompt = (call: OpenAICall): number => call.prompts[0]!.request.n;

const COMPLETIONS: Endpoint = {
  path: OPENAI_PATHS.completions,
  idPrefix: "cmpl-",
  object: "text_completion",
  parse: (handler, body, info) => parseOpenAICompletion(body, (b) => handler.parseRequest(b), info),
  stages: (handler) => [(prompts: OpenAIPrompt[], ctx) => promptInputs(handler, prompts, ctx), inference(handler)],
  response: (header, call, bodies) => openaiCompletion(header, bodies, choicesPerPrompt(call), call.logprobs),
  chunk: (header, call, chunk, prompt) => openaiCompletionChunk(header, chunk, prompt, choicesPerPrompt(call), call.logprobs),
  finish: (header, call, bodies) => openaiCompletionFinish(header, bodies, choicesPerPrompt(call)),
};

const CHAT: Endpoint = {
  path: OPENAI_PATHS.chat,
  idPrefix: "chatcmpl-",
  object: "chat.completion.chunk",
  parse: (handler, body) => parseOpenAIChat(body, (b) => handler.parseRequest(b)),
  stages: (handler) => [
    (prompts: OpenAIPrompt[], ctx) =>
      handler.preprocess(
        prompts.map((p) => p.request),
        ctx,
      ),
    inference(handler),
  ],
  response: (header, call, bodies) => openaiChatCompletion(header, bodies[0]!, call.logprobs),
  chunk: (header, call, chunk, _prompt, first) => openaiChatChunk(header, chunk, call.logprobs, first),
  finish: (header, _call, bodies, first) => openaiChatFinish(header, bodies[0]!, first),
};

/**
 * The inputs of v1/completions' prompts: a text prompt as it is; token ids
 * as ids, with their text (one detokenize call for all of them, special
 * tokens kept) as the prompt.
 */
async function promptInputs(handler: CompletionStages, prompts: OpenAIPrompt[], ctx: StageContext<unknown>): Promise<CompletionInput[]> {
  const idLists = prompts.flatMap((p) => (p.tokenIds ? [p.tokenIds] : []));
  const texts = idLists.length > 0 ? await ctx.model.detokenize(idLists, { skipSpecialTokens: false }) : [];
  let next = 0;
  return prompts.map(({ request, tokenIds }) => {
    if (!tokenIds) return handler.completionInput(request, request.prompt ?? "", ctx);
    const input = handler.completionInput(request, texts[next++]!, ctx);
    return { ...input, generate: { ...input.generate, prompt_token_ids: tokenIds } };
  });
}

/** The OpenAI routes of a completion handler, and its tokenizer's. */
export function openaiRoutes<Cfg extends HandlerSection>(handler: CompletionStages): Route<Cfg>[] {
  return [
    generationRoute(handler, COMPLETIONS),
    generationRoute(handler, CHAT),
    {
      path: OPENAI_PATHS.models,
      handle: async (calls, ctx) => calls.map(() => modelList(ctx)),
      errorBody: openaiErrorBody,
    },
    ...tokenizerRoutes<Cfg>(handler),
  ];
}

function modelList(ctx: StageContext<unknown>) {
  return {
    object: "list",
    data: [{ id: ctx.modelName, object: "model", created: 0, owned_by: "tsserve", max_model_len: ctx.model.info.context_length }],
  };
}

function generationRoute<Cfg>(handler: CompletionStages, endpoint: Endpoint): Route<Cfg> {
  return {
    path: endpoint.path,
    handle: (calls, ctx) => answerCalls(handler, endpoint, calls, ctx as StageContext<unknown>),
    errorBody: openaiErrorBody,
  };
}

/** One handler request of a call: which call, which of its prompts. */
interface Part {
  call: number;
  index: number;
  prompt: OpenAIPrompt;
}

async function answerCalls(
  handler: CompletionStages,
  endpoint: Endpoint,
  calls: readonly RouteCall[],
  ctx: StageContext<unknown>,
): Promise<Maybe<unknown>[]> {
  const parsed = calls.map((call) => parseBody(call.body, call.bodyError, (body) => endpoint.parse(handler, body, ctx.model.info)));
  const created = unixSeconds();
  const headers = parsed.map(
    (call): CallHeader => ({
      id: responseId(endpoint.idPrefix),
      created,
      model: (!isFailure(call) && call.prompts[0]?.request.model) || ctx.modelName,
    }),
  );
  const parts: Part[] = parsed.flatMap((call, k) =>
    isFailure(call) ? [] : call.prompts.map((prompt, index) => ({ call: k, index, prompt })),
  );
  const firsts = parsed.map(() => new Set<number>());
  const first = (k: number) => (index: number) => !firsts[k]!.has(index) && firsts[k]!.add(index) !== undefined;

  const base: StageBase<unknown> = {
    ...ctx,
    stream: (position, chunk) => {
      const part = parts[position];
      const call = part && parsed[part.call];
      if (!part || !call || isFailure(call)) return;
      const event = endpoint.chunk(headers[part.call]!, call, chunk as CompletionChunk, part.index, first(part.call));
      ctx.stream(ctx.requestIndices[part.call]!, sseBody([sseEvent(event)]));
    },
  };
  const outputs = await runStages(
    endpoint.stages(handler),
    parts.map((part) => part.prompt),
    parts.map((_, position) => position),
    base,
  );
  const stageCtx: StageContext<unknown> = { ...base, requestIndices: parts.map((_, position) => position) };

  return parsed.map((call, k) => {
    if (isFailure(call)) return call;
    const mine = parts.flatMap((part, position) => (part.call === k ? [outputs[position]] : []));
    const failure = mine.find(isFailure);
    if (failure) return failure;
    try {
      const bodies = mine.map((output) => handler.responseBody(output as CompletionOutput, stageCtx));
      return call.stream ? streamEnd(endpoint, headers[k]!, call, bodies, first(k)) : endpoint.response(headers[k]!, call, bodies);
    } catch (error) {
      return RequestFailure.from(error);
    }
  });
}

/** The last part of a stream: each choice's finish, the usage when asked for, `[DONE]`. */
function streamEnd(
  endpoint: Endpoint,
  header: CallHeader,
  call: OpenAICall,
  bodies: CompletionResponse[],
  first: (index: number) => boolean,
) {
  const events = [sseEvent(endpoint.finish(header, call, bodies, first))];
  if (call.includeUsage) {
    events.push(sseEvent({ ...header, object: endpoint.object, choices: [], usage: sumUsage(bodies.map((body) => body.usage)) }));
  }
  events.push(SSE_DONE);
  return sseBody(events);
}

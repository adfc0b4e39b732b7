/**
 * The OpenAI-compatible routes every CompletionHandler answers, under
 * `/predictions/<model>/<version>/v1/`:
 *
 * - `v1/completions`: OpenAI's text completion; each prompt goes to the model
 *   as it is (OpenAI's completions take raw text), through the handler's
 *   inference.
 * - `v1/chat/completions`: the messages through the handler's chat format
 *   (its preprocess), then its inference.
 * - `v1/models`: the served model.
 *
 * Requests of one batch to one route share one inference pass. Refusals come
 * in OpenAI's error shape; `stream: true` answers with server-sent events.
 */
import { randomUUID } from "node:crypto";
import type { StageContext } from "../handler/handler.ts";
import { RequestFailure, isFailure, type Maybe } from "../handler/failure.ts";
import type { Route, RouteCall } from "../handler/route.ts";
import { runStages, type Stage, type StageBase } from "../handler/stages.ts";
import type { HandlerSection } from "../config/model-config.ts";
import type { CompletionHandler, CompletionOutput } from "./handler.ts";
import type { CompletionRequest } from "./request.ts";
import type { CompletionChunk, CompletionResponse } from "./response.ts";
import { openaiErrorBody } from "./openai-error.ts";
import { parseOpenAIChat, parseOpenAICompletion, type OpenAICall } from "./openai-request.ts";
import {
  openaiChatChunk, openaiChatCompletion, openaiChatFinish, openaiCompletion, openaiCompletionChunk, openaiCompletionFinish,
  sumUsage, type CallHeader,
} from "./openai-response.ts";
import { SSE_DONE, sseBody, sseEvent } from "./sse.ts";

type AnyCompletionHandler = CompletionHandler<any, any>;

export const OPENAI_PATHS = { completions: "v1/completions", chat: "v1/chat/completions", models: "v1/models" } as const;

/** How one OpenAI endpoint reads a call and writes its answer. */
interface Endpoint {
  path: string;
  idPrefix: string;
  parse(handler: AnyCompletionHandler, body: unknown): OpenAICall | RequestFailure;
  /** The stages that turn the call's requests into completion outputs. */
  stages(handler: AnyCompletionHandler): Stage<any>[];
  response(header: CallHeader, call: OpenAICall, bodies: CompletionResponse[]): unknown;
  chunk(header: CallHeader, call: OpenAICall, chunk: CompletionChunk, prompt: number, first: (index: number) => boolean): unknown;
  finish(header: CallHeader, call: OpenAICall, bodies: CompletionResponse[], first: (index: number) => boolean): unknown;
  object: string;
}

const inference = (handler: AnyCompletionHandler): Stage<any> => (inputs, ctx) => handler.inference(inputs, ctx);

const COMPLETIONS: Endpoint = {
  path: OPENAI_PATHS.completions,
  idPrefix: "cmpl-",
  object: "text_completion",
  parse: (handler, body) => parseOpenAICompletion(body, (b) => handler.parseRequest(b)),
  stages: (handler) => [
    async (requests: CompletionRequest[], ctx) => requests.map((request) => handler.completionInput(request, request.prompt ?? "", ctx)),
    inference(handler),
  ],
  response: (header, call, bodies) => openaiCompletion(header, bodies, call.requests[0]!.n, call.logprobs),
  chunk: (header, call, chunk, prompt) => openaiCompletionChunk(header, chunk, prompt, call.requests[0]!.n, call.logprobs),
  finish: (header, call, bodies) => openaiCompletionFinish(header, bodies, call.requests[0]!.n),
};

const CHAT: Endpoint = {
  path: OPENAI_PATHS.chat,
  idPrefix: "chatcmpl-",
  object: "chat.completion.chunk",
  parse: (handler, body) => parseOpenAIChat(body, (b) => handler.parseRequest(b)),
  stages: (handler) => [(requests, ctx) => handler.preprocess(requests, ctx), inference(handler)],
  response: (header, call, bodies) => openaiChatCompletion(header, bodies[0]!, call.logprobs),
  chunk: (header, call, chunk, _prompt, first) => openaiChatChunk(header, chunk, call.logprobs, first),
  finish: (header, _call, bodies, first) => openaiChatFinish(header, bodies[0]!, first),
};

/** The OpenAI routes of a completion handler. */
export function openaiRoutes<Cfg extends HandlerSection>(handler: AnyCompletionHandler): Route<Cfg>[] {
  return [
    generationRoute(handler, COMPLETIONS),
    generationRoute(handler, CHAT),
    {
      path: OPENAI_PATHS.models,
      handle: async (calls, ctx) => calls.map(() => modelList(ctx)),
      errorBody: openaiErrorBody,
    },
  ];
}

function modelList(ctx: StageContext<unknown>) {
  return {
    object: "list",
    data: [{ id: ctx.modelName, object: "model", created: 0, owned_by: "tsserve", max_model_len: ctx.model.info.context_length }],
  };
}

function generationRoute<Cfg>(handler: AnyCompletionHandler, endpoint: Endpoint): Route<Cfg> {
  return {
    path: endpoint.path,
    handle: (calls, ctx) => answerCalls(handler, endpoint, calls, ctx as StageContext<unknown>),
    errorBody: openaiErrorBody,
  };
}

/** One handler request of a call: which call, which of its prompts. */
interface Part {
  call: number;
  prompt: number;
  request: CompletionRequest;
}

async function answerCalls(
  handler: AnyCompletionHandler,
  endpoint: Endpoint,
  calls: readonly RouteCall[],
  ctx: StageContext<unknown>,
): Promise<Maybe<unknown>[]> {
  const parsed = calls.map((call) => call.bodyError !== undefined
    ? RequestFailure.badRequest(call.bodyError, "body")
    : endpoint.parse(handler, call.body));
  const created = Math.floor(Date.now() / 1000);
  const headers = parsed.map((call): CallHeader => ({
    id: `${endpoint.idPrefix}${randomUUID().replaceAll("-", "")}`,
    created,
    model: (!isFailure(call) && call.requests[0]?.model) || ctx.modelName,
  }));
  const parts: Part[] = parsed.flatMap((call, k) => isFailure(call) ? [] : call.requests.map((request, prompt) => ({ call: k, prompt, request })));
  const firsts = parsed.map(() => new Set<number>());
  const first = (k: number) => (index: number) => !firsts[k]!.has(index) && firsts[k]!.add(index) !== undefined;

  const base: StageBase<unknown> = {
    ...ctx,
    stream: (position, chunk) => {
      const part = parts[position];
      const call = part && parsed[part.call];
      if (!part || !call || isFailure(call)) return;
      const event = endpoint.chunk(headers[part.call]!, call, chunk as CompletionChunk, part.prompt, first(part.call));
      ctx.stream(ctx.requestIndices[part.call]!, sseBody([sseEvent(event)]));
    },
  };
  const outputs = await runStages(endpoint.stages(handler), parts.map((part) => part.request), parts.map((_, position) => position), base);
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
function streamEnd(endpoint: Endpoint, header: CallHeader, call: OpenAICall, bodies: CompletionResponse[], first: (index: number) => boolean) {
  const events = [sseEvent(endpoint.finish(header, call, bodies, first))];
  if (call.includeUsage) {
    events.push(sseEvent({ ...header, object: endpoint.object, choices: [], usage: sumUsage(bodies.map((body) => body.usage)) }));
  }
  events.push(SSE_DONE);
  return sseBody(events);
}

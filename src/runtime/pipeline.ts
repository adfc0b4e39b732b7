/**
 * Runs one TorchServe batch through a handler. Requests are grouped by route
 * (their `url_path`): those to the model's own path go through the handler's
 * pipeline (validate each body, then preprocess -> inference -> postprocess),
 * those to a route the handler declares go to that route, and the rest get
 * the handler's 404. A failure of one request never fails another.
 */
import type { AnyHandler } from "../handler/handler-class.ts";
import type { HandlerContext } from "../handler/context.ts";
import { RequestFailure, isFailure, type Maybe } from "../handler/failure.ts";
import { normalizeRoutePath, type Route, type RouteCall } from "../handler/route.ts";
import { oneAnswerPerItem, runStages, type Stage, type StageBase } from "../handler/stages.ts";
import { parseBody } from "../handler/request-body.ts";
import type { IncomingRequest, RequestOutcome } from "../protocol/messages.ts";
import { toOutcome } from "./outcome.ts";
import { timedStage, type OnStage } from "../handler/stage-report.ts";

interface BatchOptions {
  /** Intermediate responses for streaming requests. */
  stream?: (requestIndex: number, body: unknown) => void;
  /** Each exception the handler threw in this batch, once, with the batch indices of the requests it failed (its stack goes to the model log). */
  onThrown?: (error: Error, requestIndices: number[]) => void;
  /** Each stage's time and failures (tsserve dev's inspector); absent, the stages run unwrapped. */
  onStage?: OnStage;
}

export async function runBatch(
  handler: AnyHandler,
  ctx: HandlerContext<unknown>,
  requests: readonly IncomingRequest[],
  options: BatchOptions = {},
): Promise<RequestOutcome[]> {
  const base: StageBase = { ...ctx, stream: options.stream ?? (() => {}) };
  const replies: Maybe<unknown>[] = new Array(requests.length);
  for (const [path, indices] of groupByPath(requests)) {
    const group = indices.map((index) => requests[index]!);
    const route = path === "" ? undefined : routeTable(handler).get(path);
    const answers =
      path === ""
        ? await answerWithPipeline(handler, group, indices, base, options.onStage)
        : route
          ? await answerWithRoute(route, group, indices, base, options.onStage)
          : group.map(() => handler.unknownRoute(path));
    indices.forEach((index, k) => {
      replies[index] = answers[k];
    });
  }
  if (options.onThrown) reportThrown(replies, options.onThrown);
  return replies.map((reply) => toOutcome(reply ?? new RequestFailure(500, "handler returned no response for this request")));
}

function reportThrown(replies: readonly Maybe<unknown>[], onThrown: (error: Error, requestIndices: number[]) => void): void {
  const failed = new Map<Error, number[]>();
  replies.forEach((reply, index) => {
    if (isFailure(reply) && reply.thrown) failed.set(reply.thrown, [...(failed.get(reply.thrown) ?? []), index]);
  });
  for (const [error, indices] of failed) onThrown(error, indices);
}

/** Batch indices per normalized url_path, in order of first appearance. */
export function groupByPath(requests: readonly IncomingRequest[]): Map<string, number[]> {
  const groups = new Map<string, number[]>();
  requests.forEach((request, index) => {
    const path = normalizeRoutePath(request.url_path ?? "");
    const group = groups.get(path);
    if (group) group.push(index);
    else groups.set(path, [index]);
  });
  return groups;
}

const routeTables = new WeakMap<AnyHandler, Map<string, Route<unknown>>>();

/** The handler's routes by normalized path (asked once per handler). */
function routeTable(handler: AnyHandler): Map<string, Route<unknown>> {
  let table = routeTables.get(handler);
  if (!table) {
    table = new Map(handler.routes().map((route: Route<unknown>) => [normalizeRoutePath(route.path), route]));
    routeTables.set(handler, table);
  }
  return table;
}

async function answerWithPipeline(
  handler: AnyHandler,
  requests: readonly IncomingRequest[],
  indices: readonly number[],
  base: StageBase,
  onStage: OnStage | undefined,
): Promise<Maybe<unknown>[]> {
  const parsed = requests.map((request) => parseBody(request.body, request.body_error, (body) => handler.parseRequest(body)));
  const named: [string, Stage][] = [
    ["preprocess", (items, c) => handler.preprocess(items, c)],
    ["inference", (items, c) => handler.inference(items, c)],
    ["postprocess", (items, c) => handler.postprocess(items, c)],
  ];
  const stages = named.map(([name, stage]) => (onStage ? timedStage(name, stage, onStage) : stage));
  const live = parsed.flatMap((value, k) => (isFailure(value) ? [] : [k]));
  const results = await runStages(
    stages,
    live.map((k) => parsed[k]),
    live.map((k) => indices[k]!),
    base,
  );
  const answers: Maybe<unknown>[] = [...parsed];
  live.forEach((k, position) => {
    answers[k] = results[position];
  });
  return answers;
}

async function answerWithRoute(
  route: Route<unknown>,
  requests: readonly IncomingRequest[],
  indices: readonly number[],
  base: StageBase,
  onStage: OnStage | undefined,
): Promise<Maybe<unknown>[]> {
  const calls: RouteCall[] = requests.map((request) =>
    request.body_error === undefined ? { body: request.body } : { body: request.body, bodyError: request.body_error },
  );
  const handle: Stage = (items, ctx) => route.handle(items, ctx);
  const stage = onStage ? timedStage(`route ${route.path}`, handle, onStage) : handle;
  const replies = await oneAnswerPerItem(`route "${route.path}"`, calls.length, () => stage(calls, { ...base, requestIndices: indices }));
  return replies.map((reply) =>
    isFailure(reply) && reply.body === undefined && route.errorBody ? reply.withBody(route.errorBody(reply)) : reply,
  );
}

/**
 * Runs one TorchServe batch through a handler: validate each body, then
 * preprocess -> inference -> postprocess over the requests still alive. A
 * failure of one request (a RequestFailure in a stage's output) drops only
 * that request; a stage that throws fails the requests it was given.
 */
import type { AnyHandler, HandlerContext, StageContext } from "../handler/handler.ts";
import { RequestFailure, isFailure, type Maybe } from "../handler/failure.ts";
import type { IncomingRequest, RequestOutcome } from "../protocol/messages.ts";

export interface BatchOptions {
  /** Intermediate responses for streaming requests. */
  stream?: (requestIndex: number, body: unknown) => void;
}

interface Live<T> {
  index: number;
  value: T;
}

export async function runBatch(
  handler: AnyHandler,
  ctx: HandlerContext<unknown>,
  requests: readonly IncomingRequest[],
  options: BatchOptions = {},
): Promise<RequestOutcome[]> {
  const outcomes: (RequestOutcome | undefined)[] = new Array(requests.length);
  const fail = (index: number, failure: RequestFailure) => {
    outcomes[index] = failure.field === undefined
      ? { ok: false, status: failure.status, message: failure.message }
      : { ok: false, status: failure.status, message: failure.message, field: failure.field };
  };

  let live: Live<unknown>[] = [];
  requests.forEach((request, index) => {
    const value = request.body_error !== undefined
      ? RequestFailure.badRequest(request.body_error, "body")
      : handler.parseRequest(request.body);
    if (isFailure(value)) fail(index, value);
    else live.push({ index, value });
  });

  const stages = [
    (items: unknown[], c: StageContext<unknown>) => handler.preprocess(items, c),
    (items: unknown[], c: StageContext<unknown>) => handler.inference(items, c),
    (items: unknown[], c: StageContext<unknown>) => handler.postprocess(items, c),
  ];
  for (const stage of stages) {
    if (live.length === 0) break;
    live = await runStage(stage, live, stageContext(ctx, live, options), fail);
  }
  for (const { index, value } of live) outcomes[index] = { ok: true, body: value };
  return outcomes.map((o) => o ?? { ok: false, status: 500, message: "handler returned no response for this request" });
}

function stageContext(ctx: HandlerContext<unknown>, live: Live<unknown>[], options: BatchOptions): StageContext<unknown> {
  return {
    ...ctx,
    requestIndices: live.map((item) => item.index),
    stream: options.stream ?? (() => {}),
  };
}

async function runStage(
  stage: (items: unknown[], ctx: StageContext<unknown>) => Promise<Maybe<unknown>[]>,
  live: Live<unknown>[],
  ctx: StageContext<unknown>,
  fail: (index: number, failure: RequestFailure) => void,
): Promise<Live<unknown>[]> {
  let results: Maybe<unknown>[];
  try {
    results = await stage(live.map((item) => item.value), ctx);
  } catch (error) {
    for (const item of live) fail(item.index, RequestFailure.from(error));
    return [];
  }
  if (!Array.isArray(results) || results.length !== live.length) {
    const got = Array.isArray(results) ? `${results.length} items` : typeof results;
    for (const item of live) fail(item.index, new RequestFailure(500, `handler stage returned ${got} for ${live.length} requests`));
    return [];
  }
  const next: Live<unknown>[] = [];
  results.forEach((value, position) => {
    const index = live[position]!.index;
    if (isFailure(value)) fail(index, value);
    else next.push({ index, value });
  });
  return next;
}

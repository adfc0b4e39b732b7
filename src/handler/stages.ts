/**
 * Runs values through a handler's stages (preprocess -> inference ->
 * postprocess, or any prefix of them). A RequestFailure in a stage's output
 * drops that value only; a stage that throws, or answers with the wrong
 * number of items, fails every value it was given. The runtime uses it for a
 * handler's own path, and routes use it to reuse a handler's stages.
 */
import type { HandlerContext, StageContext } from "./handler.ts";
import { RequestFailure, isFailure, type Maybe } from "./failure.ts";

export type Stage<Cfg = unknown> = (items: any[], ctx: StageContext<Cfg>) => Promise<Maybe<unknown>[]>;

/** A stage context without its positions: runStages fills `requestIndices` in per stage. */
export type StageBase<Cfg = unknown> = HandlerContext<Cfg> & Pick<StageContext<Cfg>, "stream">;

/**
 * One result per value: what the last stage made of it, or its failure.
 * `indices[i]` is value i's entry in `ctx.requestIndices` (its batch index,
 * or whatever the caller's `stream` expects).
 */
export async function runStages<Cfg>(
  stages: readonly Stage<Cfg>[],
  values: readonly unknown[],
  indices: readonly number[],
  base: StageBase<Cfg>,
): Promise<Maybe<unknown>[]> {
  const results: Maybe<unknown>[] = [...values];
  let live = values.map((_, position) => position);
  for (const stage of stages) {
    if (live.length === 0) break;
    const ctx: StageContext<Cfg> = { ...base, requestIndices: live.map((position) => indices[position]!) };
    const outputs = await runOne(stage, live.map((position) => results[position]), ctx);
    outputs.forEach((output, k) => (results[live[k]!] = output));
    live = live.filter((position) => !isFailure(results[position]));
  }
  return results;
}

async function runOne<Cfg>(stage: Stage<Cfg>, items: unknown[], ctx: StageContext<Cfg>): Promise<Maybe<unknown>[]> {
  let outputs: Maybe<unknown>[];
  try {
    outputs = await stage(items, ctx);
  } catch (error) {
    return items.map(() => RequestFailure.from(error));
  }
  if (!Array.isArray(outputs) || outputs.length !== items.length) {
    const got = Array.isArray(outputs) ? `${outputs.length} items` : typeof outputs;
    return items.map(() => new RequestFailure(500, `handler stage returned ${got} for ${items.length} requests`));
  }
  return outputs;
}

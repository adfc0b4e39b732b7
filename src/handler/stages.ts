/**
 * Runs values through a handler's stages (preprocess -> inference ->
 * postprocess, or any prefix of them). A RequestFailure in a stage's output
 * drops that value only; a stage that throws, or answers with the wrong
 * number of items, fails every value it was given. The runtime uses it for a
 * handler's own path, and routes use it to reuse a handler's stages.
 */
import type { HandlerContext, StageContext } from "./context.ts";
import { RequestFailure, isFailure, type Maybe } from "./failure.ts";
import { abortReason } from "../protocol/errors.ts";

// biome-ignore lint/suspicious/noExplicitAny: each stage takes the previous one's outputs, whose type only the handler knows
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
    if (base.signal?.aborted) {
      // The request is over (timed out, its client gone): no further stage runs for it.
      const failure = new RequestFailure(499, `the request was cancelled before this stage: ${abortReason(base.signal)}`);
      for (const position of live) results[position] = failure;
      break;
    }
    const ctx: StageContext<Cfg> = { ...base, requestIndices: live.map((position) => indices[position]!) };
    const items = live.map((position) => results[position]);
    const outputs = await oneAnswerPerItem("handler stage", items.length, () => stage(items, ctx));
    outputs.forEach((output, k) => {
      results[live[k]!] = output;
    });
    live = live.filter((position) => !isFailure(results[position]));
  }
  return results;
}

/**
 * Asks a stage or a route for one answer per item and holds it to that: a
 * throw fails every item, and so does anything but an array of `count`
 * answers (the failure names `who` and what came back).
 */
export async function oneAnswerPerItem(who: string, count: number, ask: () => Promise<Maybe<unknown>[]>): Promise<Maybe<unknown>[]> {
  let answers: unknown;
  try {
    answers = await ask();
  } catch (error) {
    return Array.from({ length: count }, () => RequestFailure.from(error));
  }
  if (Array.isArray(answers) && answers.length === count) return answers as Maybe<unknown>[];
  const got = Array.isArray(answers) ? `${answers.length} replies` : typeof answers;
  return Array.from({ length: count }, () => new RequestFailure(500, `${who} returned ${got} for ${count} requests`));
}

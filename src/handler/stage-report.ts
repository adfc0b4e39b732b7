/**
 * A stage's own time and the requests it failed, for the inspector. Only a
 * batch run with `onStage` (tsserve dev's inspector) wraps its stages.
 */
import { isFailure, type Maybe } from "./failure.ts";
import type { Stage } from "./stages.ts";

export interface StageReport {
  stage: string;
  /** Batch indices of the requests the stage was given. */
  requestIndices: readonly number[];
  ms: number;
  /** Those it failed, with what the handler threw when it threw. */
  failures: { requestIndex: number; thrown?: Error }[];
}

export type OnStage = (report: StageReport) => void;

function failuresIn(outputs: readonly Maybe<unknown>[], requestIndices: readonly number[]): StageReport["failures"] {
  return outputs.flatMap((output, k) =>
    isFailure(output) ? [{ requestIndex: requestIndices[k]!, ...(output.thrown ? { thrown: output.thrown } : {}) }] : [],
  );
}

export function timedStage(name: string, stage: Stage, onStage: OnStage): Stage {
  return async (items, ctx) => {
    const started = performance.now();
    const report = (failures: StageReport["failures"]) =>
      onStage({ stage: name, requestIndices: ctx.requestIndices, ms: performance.now() - started, failures });
    try {
      const outputs = await stage(items, ctx);
      report(Array.isArray(outputs) ? failuresIn(outputs, ctx.requestIndices) : []);
      return outputs;
    } catch (error) {
      report(ctx.requestIndices.map((requestIndex) => ({ requestIndex, ...(error instanceof Error ? { thrown: error } : {}) })));
      throw error;
    }
  };
}

/**
 * The journal of one `handle` call: a `start` per request, a `call` per
 * prompt its model calls ran, the streamed text, and an `end` per request
 * with its stages' times and what it answered. Every post is fire-and-forget.
 */
import { errorPlace } from "../handler/error-place.ts";
import type { ModelClient } from "../handler/model.ts";
import type { IncomingRequest, RequestOutcome } from "../protocol/messages.ts";
import type { StageReport } from "../handler/stage-report.ts";
import type { JournalEvent, JourneyEnd, StageTime } from "./journal.ts";
import { RecordingModel } from "./recording-model.ts";

export type Post = (event: JournalEvent) => void;

const DELTA_FLUSH_MS = 100;

function journeyEnd(outcome: RequestOutcome, stage: string | undefined, thrown: Error | undefined): JourneyEnd {
  if (outcome.ok) return { status: 200, body: outcome.body };
  const location = thrown ? errorPlace(thrown)?.location : undefined;
  const error = {
    message: outcome.message,
    ...(outcome.field ? { field: outcome.field } : {}),
    stage: stage ?? "request validation",
    ...(location ? { location } : {}),
  };
  return {
    status: outcome.status,
    body: outcome.body ?? { error: { code: outcome.status, message: outcome.message, field: outcome.field } },
    error,
  };
}

export class BatchJournal {
  private readonly ids: string[];
  private readonly stages = new Map<number, StageTime[]>();
  private readonly failedAt = new Map<number, { stage: string; thrown?: Error }>();
  private pendingText = "";
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly post: Post,
    batchId: number,
    requests: readonly IncomingRequest[],
  ) {
    const at = Date.now();
    this.ids = requests.map((_, index) => `${process.pid}-${batchId}-${index}`);
    requests.forEach((request, index) => {
      post({
        kind: "start",
        id: this.ids[index]!,
        at,
        route: request.url_path ?? "",
        body: request.body_error ? String(request.body) : request.body,
      });
    });
  }

  /** The model the batch's stages call, journaling each prompt (to every request of the batch). */
  model(inner: ModelClient): ModelClient {
    return new RecordingModel(inner, {
      call: (call) => this.post({ kind: "call", ids: this.ids, call }),
      delta: (text) => this.delta(text),
    });
  }

  readonly onStage = (report: StageReport): void => {
    for (const index of report.requestIndices) {
      const times = this.stages.get(index) ?? [];
      times.push({ stage: report.stage, ms: report.ms });
      this.stages.set(index, times);
    }
    for (const failure of report.failures) {
      if (!this.failedAt.has(failure.requestIndex))
        this.failedAt.set(failure.requestIndex, { stage: report.stage, ...(failure.thrown ? { thrown: failure.thrown } : {}) });
    }
  };

  private delta(text: string): void {
    this.pendingText += text;
    this.flushTimer ??= setTimeout(() => this.flush(), DELTA_FLUSH_MS).unref();
  }

  private flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.pendingText) this.post({ kind: "delta", ids: this.ids, text: this.pendingText });
    this.pendingText = "";
  }

  finish(outcomes: readonly RequestOutcome[]): void {
    this.flush();
    outcomes.forEach((outcome, index) => {
      const failed = this.failedAt.get(index);
      this.post({
        kind: "end",
        id: this.ids[index]!,
        stages: this.stages.get(index) ?? [],
        end: journeyEnd(outcome, failed?.stage, failed?.thrown),
      });
    });
  }
}

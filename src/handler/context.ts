/**
 * What a handler is given: the worker's context at `initialize`, and per
 * stage call the positions of its items in the TorchServe batch.
 */
import type { ModelClient } from "./model.ts";
import type { HandlerSection, ModelConfig } from "../config/model-config.ts";

export interface HandlerContext<Cfg = HandlerSection> {
  readonly modelName: string;
  readonly modelDir: string;
  readonly gpuId: number | null;
  readonly batchSize: number;
  /** The whole model-config.yaml; its `handler:` section parsed by the handler's config schema. */
  readonly config: ModelConfig & { handler: Cfg };
  readonly model: ModelClient;
  /**
   * Aborts when the work is no longer wanted: the request ran out of time (the
   * shim answered 504), its client went away, or the shim is gone. The runtime
   * starts no further stage once it has aborted, and `ctx.model`'s calls made in
   * this request are cancelled with it (a generate then rejects at once, and
   * the engine drops its rows); a long stage of the handler's own should check
   * it (`signal.throwIfAborted()`) or pass it on. Absent when nothing can cancel
   * the work (a handler method called directly in a test).
   */
  readonly signal?: AbortSignal;
}

/** The context of one stage call: positions in the stage's array map to HTTP requests of the batch. */
export interface StageContext<Cfg = HandlerSection> extends HandlerContext<Cfg> {
  /** `requestIndices[i]` is the index in the TorchServe batch of the item at position i. */
  readonly requestIndices: readonly number[];
  /** Send `body` now as an intermediate (streamed) response of batch request `requestIndex`. */
  stream(requestIndex: number, body: unknown): void;
}

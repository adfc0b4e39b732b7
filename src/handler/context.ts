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
}

/** The context of one stage call: positions in the stage's array map to HTTP requests of the batch. */
export interface StageContext<Cfg = HandlerSection> extends HandlerContext<Cfg> {
  /** `requestIndices[i]` is the index in the TorchServe batch of the item at position i. */
  readonly requestIndices: readonly number[];
  /** Send `body` now as an intermediate (streamed) response of batch request `requestIndex`. */
  stream(requestIndex: number, body: unknown): void;
}

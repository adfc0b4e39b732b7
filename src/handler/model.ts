/**
 * The tensor side as a handler sees it. In production every call goes over
 * the bridge to the Python shim; in tests it is a scripted fake (tsserve/testing).
 */
import type { GenerateOutcome, GenerateRequest, GenerationDelta, LiteralSpans, ModelInfo } from "../protocol/messages.ts";

export type { GenerateOutcome, GenerateRequest, GenerationDelta, ModelInfo };

export interface GenerateOptions {
  /**
   * Called with each new piece of text while generating (requests with
   * `stream: true`); `delta.request_index` indexes the `requests` passed to generate.
   */
  onDelta?: (delta: GenerationDelta) => void;
  /**
   * Cancels the call: it rejects at once and the engine drops its rows. A call
   * made while handling a request is also cancelled with that request
   * (`ctx.signal`), whether or not this is given.
   */
  signal?: AbortSignal;
}

export interface TokenizeOptions {
  addSpecialTokens?: boolean;
  literalSpans?: LiteralSpans[];
  signal?: AbortSignal;
}

export interface ModelClient {
  readonly info: ModelInfo;
  /** One batched generation pass; outcomes line up with `requests`. */
  generate(requests: GenerateRequest[], options?: GenerateOptions): Promise<GenerateOutcome[]>;
  /** `literalSpans`: per text, the content spans tokenized as plain text, as a GenerateRequest's `literal_spans` are. */
  tokenize(texts: string[], options?: TokenizeOptions): Promise<number[][]>;
  detokenize(ids: number[][], options?: { skipSpecialTokens?: boolean; signal?: AbortSignal }): Promise<string[]>;
}

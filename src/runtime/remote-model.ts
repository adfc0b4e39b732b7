/** `ctx.model` in production: every call goes over the bridge to the Python shim. */
import type { Connection } from "../protocol/connection.ts";
import type { GenerationDelta, ModelInfo } from "../protocol/messages.ts";
import { Detokenize, Generate, Tokenize } from "../protocol/methods.ts";
import type { GenerateOptions, ModelClient, TokenizeOptions } from "../handler/model.ts";
import type { GenerateRequest, GenerateOutcome } from "../protocol/messages.ts";
import { RpcError } from "../protocol/errors.ts";
import { RequestFailure } from "../handler/failure.ts";

/** The shim refuses a call it will not do (a tokenize over its size limit) with `data.status`: that request's failure, not a 500. */
function asFailure(error: unknown): unknown {
  if (error instanceof RpcError && typeof (error.data as { status?: unknown } | undefined)?.status === "number") {
    return new RequestFailure((error.data as { status: number }).status, error.message);
  }
  return error;
}

export class RemoteModel implements ModelClient {
  constructor(
    private readonly connection: Connection,
    readonly info: ModelInfo,
    private readonly batchId?: number,
    /** The handle call's signal: every call of this batch is cancelled with it. */
    private readonly batchSignal?: AbortSignal,
    private readonly listeners = new Map<number, (delta: GenerationDelta) => void>(),
    private readonly callIds = { next: 1 },
  ) {}

  /** The same model for one handle call: its generate calls carry the batch id. */
  forBatch(batchId: number, signal?: AbortSignal): RemoteModel {
    return new RemoteModel(this.connection, this.info, batchId, signal, this.listeners, this.callIds);
  }

  /** The signal a call honours: the batch's, the caller's, or either. */
  private signalFor(own?: AbortSignal): AbortSignal | undefined {
    if (!own) return this.batchSignal;
    return this.batchSignal ? AbortSignal.any([this.batchSignal, own]) : own;
  }

  /** Routes a `generation/delta` notification to the generate call it belongs to. */
  deliverDelta(delta: GenerationDelta): void {
    this.listeners.get(delta.call_id)?.(delta);
  }

  async generate(requests: GenerateRequest[], options: GenerateOptions = {}): Promise<GenerateOutcome[]> {
    const callId = this.callIds.next++;
    if (options.onDelta) this.listeners.set(callId, options.onDelta);
    try {
      const params = { call_id: callId, ...(this.batchId === undefined ? {} : { batch_id: this.batchId }), requests };
      const { outcomes } = await this.connection.sendRequest(Generate, params, { signal: this.signalFor(options.signal) });
      return outcomes;
    } finally {
      this.listeners.delete(callId);
    }
  }

  async tokenize(texts: string[], options: TokenizeOptions = {}): Promise<number[][]> {
    const spans = options.literalSpans?.some((s) => s.length > 0) ? { literal_spans: options.literalSpans } : {};
    const params = { texts, add_special_tokens: options.addSpecialTokens ?? true, ...spans };
    const { ids } = await this.connection.sendRequest(Tokenize, params, { signal: this.signalFor(options.signal) }).catch((error) => {
      throw asFailure(error);
    });
    return ids;
  }

  async detokenize(ids: number[][], options: { skipSpecialTokens?: boolean; signal?: AbortSignal } = {}): Promise<string[]> {
    const params = { ids, skip_special_tokens: options.skipSpecialTokens ?? true };
    const { texts } = await this.connection.sendRequest(Detokenize, params, { signal: this.signalFor(options.signal) }).catch((error) => {
      throw asFailure(error);
    });
    return texts;
  }
}

/** `ctx.model` in production: every call goes over the bridge to the Python shim. */
import type { Connection } from "../protocol/connection.ts";
import type { GenerationDelta, ModelInfo } from "../protocol/messages.ts";
import { Detokenize, Generate, Tokenize } from "../protocol/methods.ts";
import type { GenerateOptions, ModelClient } from "../handler/model.ts";
import type { GenerateRequest, GenerateOutcome } from "../protocol/messages.ts";

export class RemoteModel implements ModelClient {
  constructor(
    private readonly connection: Connection,
    readonly info: ModelInfo,
    private readonly batchId?: number,
    private readonly listeners = new Map<number, (delta: GenerationDelta) => void>(),
    private readonly callIds = { next: 1 },
  ) {}

  /** The same model for one handle call: its generate calls carry the batch id. */
  forBatch(batchId: number): RemoteModel {
    return new RemoteModel(this.connection, this.info, batchId, this.listeners, this.callIds);
  }

  /** Routes a `generation/delta` notification to the generate call it belongs to. */
  deliverDelta(delta: GenerationDelta): void {
    this.listeners.get(delta.call_id)?.(delta);
  }

  async generate(requests: GenerateRequest[], options: GenerateOptions = {}): Promise<GenerateOutcome[]> {
    const callId = this.callIds.next++;
    if (options.onDelta) this.listeners.set(callId, options.onDelta);
    try {
      const { outcomes } = await this.connection.sendRequest(Generate, { call_id: callId, ...(this.batchId === undefined ? {} : { batch_id: this.batchId }), requests });
      return outcomes;
    } finally {
      this.listeners.delete(callId);
    }
  }

  async tokenize(texts: string[], options: { addSpecialTokens?: boolean } = {}): Promise<number[][]> {
    const { ids } = await this.connection.sendRequest(Tokenize, { texts, add_special_tokens: options.addSpecialTokens ?? true });
    return ids;
  }

  async detokenize(ids: number[][], options: { skipSpecialTokens?: boolean } = {}): Promise<string[]> {
    const { texts } = await this.connection.sendRequest(Detokenize, { ids, skip_special_tokens: options.skipSpecialTokens ?? true });
    return texts;
  }
}

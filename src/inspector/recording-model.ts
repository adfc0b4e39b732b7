/**
 * `ctx.model` while the inspector is on: each generate call goes to the real
 * model (asking for top alternatives), and each of its prompts is journaled
 * with its tokens and what came of it. The journaling runs after the handler
 * has its answer and never fails the call.
 */
import type { GenerateOptions, ModelClient, TokenizeOptions } from "../handler/model.ts";
import type { GenerateOutcome, GenerateRequest } from "../protocol/messages.ts";
import type { ModelCall } from "./journal.ts";
import { deltaAsAsked, INSPECT_TOP_LOGPROBS, outcomeAsAsked } from "./logprobs-as-asked.ts";
import { generatedChips, promptChips } from "./token-chips.ts";

export interface CallSink {
  call(call: ModelCall): void;
  delta(text: string): void;
}

const SHOWN_PARAMS = [
  "max_tokens",
  "temperature",
  "top_p",
  "top_k",
  "repetition_penalty",
  "seed",
  "stop",
  "logprobs",
  "num_sequences",
  "echo",
  "stream",
] as const;

function shownParams(request: GenerateRequest): Record<string, unknown> {
  return Object.fromEntries(SHOWN_PARAMS.map((key) => [key, request[key]]));
}

function callOutcome(outcome: GenerateOutcome): ModelCall["outcome"] {
  if (!outcome.ok)
    return { ok: false, status: outcome.status, message: outcome.message, ...(outcome.field ? { field: outcome.field } : {}) };
  const first = outcome.sequences[0];
  return {
    ok: true,
    text: first?.text ?? "",
    finishReason: first?.finish_reason ?? "length",
    tokens: first ? generatedChips(first.logprobs) : [],
    promptTokens: outcome.prompt_tokens,
    ...(outcome.cached_tokens === undefined ? {} : { cachedTokens: outcome.cached_tokens }),
    computeMs: outcome.compute_time * 1000,
  };
}

export class RecordingModel implements ModelClient {
  private calls = 0;

  constructor(
    private readonly model: ModelClient,
    private readonly sink: CallSink,
  ) {}

  get info() {
    return this.model.info;
  }

  async generate(requests: GenerateRequest[], options: GenerateOptions = {}): Promise<GenerateOutcome[]> {
    const call = ++this.calls;
    const started = performance.now();
    const asking = requests.map((request) => ({ ...request, logprobs: Math.max(request.logprobs ?? 0, INSPECT_TOP_LOGPROBS) }));
    const { onDelta } = options;
    const forwarded = onDelta
      ? {
          ...options,
          onDelta: (delta: Parameters<typeof onDelta>[0]) => {
            this.sink.delta(delta.text);
            onDelta(deltaAsAsked(delta, requests[delta.request_index]?.logprobs ?? null));
          },
        }
      : options;
    const outcomes = await this.model.generate(asking, forwarded);
    const ms = performance.now() - started;
    requests.forEach((request, k) => {
      void this.journal(call, request, outcomes[k]!, ms).catch(() => {});
    });
    return outcomes.map((outcome, k) => outcomeAsAsked(outcome, requests[k]!.logprobs));
  }

  private async journal(call: number, request: GenerateRequest, outcome: GenerateOutcome, ms: number): Promise<void> {
    const ids =
      request.prompt_token_ids ??
      (await this.model.tokenize([request.prompt], request.literal_spans ? { literalSpans: [request.literal_spans] } : {}))[0]!;
    const single = ids.map((id) => [id]);
    const [texts, plainTexts] = await Promise.all([
      this.model.detokenize(single, { skipSpecialTokens: false }),
      this.model.detokenize(single, { skipSpecialTokens: true }),
    ]);
    const promptTokens = {
      prompt: request.prompt,
      ids,
      texts,
      plainTexts,
      ...(request.literal_spans ? { literalSpans: request.literal_spans } : {}),
    };
    this.sink.call({
      call,
      prompt: request.prompt,
      promptChips: promptChips(promptTokens),
      params: shownParams(request),
      ...(request.structured ? { structured: request.structured } : {}),
      outcome: callOutcome(outcome),
      ms,
    });
  }

  tokenize(texts: string[], options?: TokenizeOptions): Promise<number[][]> {
    return this.model.tokenize(texts, options);
  }

  detokenize(ids: number[][], options?: { skipSpecialTokens?: boolean; signal?: AbortSignal }): Promise<string[]> {
    return this.model.detokenize(ids, options);
  }
}

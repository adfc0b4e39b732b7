/**
 * tsserve/testing: unit-test a handler offline, with vitest, no Python and no GPU.
 *
 *   const model = new FakeModel({ respond: () => "Paris" });
 *   const { outcomes } = await runHandler(new MyHandler(), [{ prompt: "Capital of France?" }], { model });
 *   expect(model.prompts).toEqual(["..."]);
 *
 * A route is called by its url_path, as TorchServe passes it:
 *
 *   await runHandler(new MyHandler(), [{ prompt: [[1, 2, 3]], max_tokens: 1 }], { model, urlPath: "v1/completions" });
 */
import type { AnyHandler } from "../handler/handler-class.ts";
import type { HandlerContext, StageContext } from "../handler/context.ts";
import type { GenerateOptions, ModelClient } from "../handler/model.ts";
import type { GenerateOutcome, GenerateRequest, ModelInfo, Sequence, TokenLogprobs } from "../protocol/messages.ts";
import { HandlerSection, parseModelConfig, type ModelConfig } from "../config/model-config.ts";
import { describeIssues } from "../handler/validate.ts";
import { runBatch } from "../runtime/pipeline.ts";
import type { RequestOutcome } from "../protocol/messages.ts";

export const FAKE_MODEL_INFO: ModelInfo = {
  name_or_path: "fake-model",
  context_length: 4096,
  vocab_size: 32000,
  bos_token: "<s>",
  eos_token: "</s>",
  chat_template: null,
  device: "cpu",
};

/** What a scripted response may be: a text for every sequence, one text per sequence, or a whole outcome. */
export type ScriptedResponse = string | string[] | GenerateOutcome;

export interface FakeModelOptions {
  info?: Partial<ModelInfo>;
  /**
   * The answer to one generate request. `call` counts generate calls from 0,
   * `index` is the request's position within its call. Default: "" for every sequence.
   */
  respond?: (request: GenerateRequest, call: number, index: number) => ScriptedResponse;
  /** Texts handed out in order, one per generate request (after them, `respond` or ""). */
  script?: ScriptedResponse[];
}

export interface RecordedGenerateCall {
  requests: GenerateRequest[];
  options: GenerateOptions | undefined;
}

/**
 * A ModelClient with scripted outputs that records every call. Tokens are
 * characters (code points): `tokenize("hé")` is `[104, 233]`, and each
 * generated character has logprob -1 (so a text's cumulative logprob is
 * minus its length). Requests with `stream: true` get one delta per sequence.
 */
export class FakeModel implements ModelClient {
  readonly info: ModelInfo;
  readonly calls: RecordedGenerateCall[] = [];
  readonly tokenizeCalls: string[][] = [];
  private readonly respond: NonNullable<FakeModelOptions["respond"]>;
  private readonly script: ScriptedResponse[];

  constructor(options: FakeModelOptions = {}) {
    this.info = { ...FAKE_MODEL_INFO, ...options.info };
    this.respond = options.respond ?? (() => "");
    this.script = [...(options.script ?? [])];
  }

  /** Every prompt passed to generate, in order. */
  get prompts(): string[] {
    return this.calls.flatMap((call) => call.requests.map((request) => request.prompt));
  }

  /** Every generate request, in order. */
  get requests(): GenerateRequest[] {
    return this.calls.flatMap((call) => call.requests);
  }

  async generate(requests: GenerateRequest[], options?: GenerateOptions): Promise<GenerateOutcome[]> {
    options?.signal?.throwIfAborted(); // as the real model: a cancelled call rejects at once
    const call = this.calls.length;
    this.calls.push({ requests: structuredClone(requests), options });
    return requests.map((request, index) => {
      const scripted = this.script.length > 0 ? this.script.shift()! : this.respond(request, call, index);
      const outcome = typeof scripted === "object" && !Array.isArray(scripted) ? scripted : fakeOutcome(request, scripted);
      if (outcome.ok && request.stream && options?.onDelta) {
        outcome.sequences.forEach((sequence, sequenceIndex) => {
          options.onDelta!({
            call_id: call,
            request_index: index,
            sequence_index: sequenceIndex,
            text: sequence.text,
            logprobs: sequence.logprobs,
          });
        });
      }
      return outcome;
    });
  }

  async tokenize(texts: string[]): Promise<number[][]> {
    this.tokenizeCalls.push([...texts]);
    return texts.map((text) => [...text].map((ch) => ch.codePointAt(0)!));
  }

  async detokenize(ids: number[][]): Promise<string[]> {
    return ids.map((row) => String.fromCodePoint(...row));
  }
}

/** Character tokens with logprob -1 each (the top alternative is the token itself). */
export function fakeLogprobs(text: string, k: number): TokenLogprobs {
  const tokens = [...text];
  const offsets = tokens.map((_token, offset) => offset);
  return {
    tokens,
    token_ids: tokens.map((t) => t.codePointAt(0)!),
    token_logprobs: tokens.map(() => -1),
    top_logprobs: tokens.map((t) => (k > 0 ? { [t]: -1 } : null)),
    text_offset: offsets,
  };
}

/**
 * A successful outcome for `request`: `texts` is one text for all
 * `num_sequences` sequences, or one per sequence. finish_reason is "stop"
 * when a text is shorter than max_tokens characters, else "length".
 */
export function fakeOutcome(request: GenerateRequest, texts: string | string[]): GenerateOutcome {
  const list = typeof texts === "string" ? Array.from({ length: request.num_sequences }, () => texts) : texts;
  const sequences: Sequence[] = list.map((text) => ({
    text,
    finish_reason: [...text].length < request.max_tokens ? "stop" : "length",
    logprobs: fakeLogprobs(text, request.logprobs ?? 0),
    cumulative_logprob: -[...text].length,
  }));
  const prompt = fakeLogprobs(request.prompt, request.logprobs ?? 0);
  if (prompt.token_logprobs.length > 0) {
    prompt.token_logprobs[0] = null;
    prompt.top_logprobs[0] = null;
  }
  return { ok: true, prompt, sequences, prompt_tokens: prompt.tokens.length, compute_time: 0.001 };
}

export interface MakeContextOptions {
  /** The handler whose config schema parses `config.handler` (else the base HandlerSection). */
  handler?: AnyHandler;
  /** A model config (whole, or just fields of its handler section under `handler`). */
  config?: Partial<ModelConfig> & { handler?: Record<string, unknown> };
  model?: ModelClient;
  modelName?: string;
  modelDir?: string;
  gpuId?: number | null;
  batchSize?: number;
  requestIndices?: number[];
  stream?: (requestIndex: number, body: unknown) => void;
}

/** A StageContext for calling handler methods directly (it is also a HandlerContext). */
export function makeContext<Cfg = HandlerSection>(options: MakeContextOptions = {}): StageContext<Cfg> & { model: ModelClient } {
  const raw = { ...options.config, handler: { model_path: "/fake/model", ...options.config?.handler } };
  const schema = options.handler?.configSchema ?? HandlerSection;
  const parsed = parseModelConfig(raw, schema);
  if (!parsed.success) throw new Error(`makeContext: bad config: ${describeIssues(parsed.error).message}`);
  return {
    modelName: options.modelName ?? "fake-model",
    modelDir: options.modelDir ?? "/fake/model",
    gpuId: options.gpuId ?? null,
    batchSize: options.batchSize ?? 1,
    config: parsed.data as ModelConfig & { handler: Cfg },
    model: options.model ?? new FakeModel(),
    requestIndices: options.requestIndices ?? [0],
    stream: options.stream ?? (() => {}),
  };
}

export interface RunHandlerOptions extends Omit<MakeContextOptions, "handler" | "requestIndices" | "stream"> {
  /** Call `initialize` first (default true; once per handler instance). */
  initialize?: boolean;
  /**
   * The sub-path every body is sent to (`v1/completions`, `tokenize`), as
   * TorchServe's `url_path`; default: the model's own path.
   */
  urlPath?: string;
  /** Each exception the handler threw, once (its message in the outcome names where; this gets the stack). */
  onThrown?: (error: Error) => void;
}

export interface RunHandlerResult {
  /** One per body, in order: `{ok: true, body}` or `{ok: false, status, message, field?}`. */
  outcomes: RequestOutcome[];
  /** Streamed chunks, in the order they were sent. */
  streamed: { requestIndex: number; body: unknown }[];
  model: ModelClient;
  ctx: HandlerContext<unknown>;
}

const initialized = new WeakSet<AnyHandler>();

/**
 * Run request bodies through a handler as one TorchServe batch: to its own
 * path (validation, the three stages, failures per request) or, with
 * `urlPath`, to one of its routes.
 */
export async function runHandler(handler: AnyHandler, bodies: unknown[], options: RunHandlerOptions = {}): Promise<RunHandlerResult> {
  const model = options.model ?? new FakeModel();
  const ctx: HandlerContext<unknown> = makeContext({
    ...options,
    handler,
    model,
    batchSize: options.batchSize ?? Math.max(1, bodies.length),
  });
  if ((options.initialize ?? true) && !initialized.has(handler)) {
    await handler.initialize(ctx);
    initialized.add(handler);
  }
  const streamed: RunHandlerResult["streamed"] = [];
  const urlPath = options.urlPath;
  const requests = bodies.map((body) => (urlPath === undefined ? { body } : { body, url_path: urlPath }));
  const outcomes = await runBatch(handler, ctx, requests, {
    stream: (requestIndex, body) => streamed.push({ requestIndex, body }),
    ...(options.onThrown ? { onThrown: options.onThrown } : {}),
  });
  return { outcomes, streamed, model, ctx };
}

/**
 * CompletionHandler: the base class of text-completion handlers. A subclass
 * says how a request becomes a prompt (`formatPrompt`); the class does the
 * rest the way the seed's handlers did, with the full completions semantics:
 *
 * - preprocess: per request, `formatPrompt` then the shim's GenerateRequest
 *   (`num_sequences = best_of`). A refusal of one request never touches the
 *   others. The shim checks the context length and answers 400 itself.
 * - inference: one batched `generate`; requests with `stream: true` get their
 *   new text sent as chunks (`streamChunk`) while it runs. An outcome with
 *   `ok: false` becomes that request's failure (status and message kept).
 * - postprocess: the response body (`responseBody`), or for a streamed
 *   request the final chunk (`finalChunk`, with `finish_reason` and `usage`).
 *
 * Every step is a method to override.
 */
import { Handler } from "../handler/handler-class.ts";
import type { StageContext } from "../handler/context.ts";
import { RequestFailure, type Maybe } from "../handler/failure.ts";
import type { GenerateRequest, GenerationDelta, Sequence, TokenLogprobs } from "../protocol/messages.ts";
import type { HandlerSection } from "../config/model-config.ts";
import { CompletionRequest, computesLogprobs, parsePlainCompletionRequest } from "./request.ts";
import { contentSpans } from "../prompts/literal-spans.ts";
import type { ChoiceLogprobs, CompletionChunk, CompletionResponse, Choice } from "./response.ts";
import type { z } from "zod";
import type { Route } from "../handler/route.ts";
import { openaiRoutes } from "./openai-routes.ts";
import { asOpenAIFailure } from "./openai-error.ts";
import { responseId, unixSeconds, type CompletionInput, type CompletionOutput } from "./completion-io.ts";

export type { CompletionInput, CompletionOutput, GenerateSuccess } from "./completion-io.ts";

const codePoints = (s: string) => [...s].length;

export abstract class CompletionHandler<
  Cfg extends HandlerSection = HandlerSection,
  Req extends CompletionRequest = CompletionRequest,
> extends Handler<Req, Cfg, CompletionInput<Req>, CompletionOutput<Req>> {
  readonly requestSchema: z.ZodType<Req> = CompletionRequest as unknown as z.ZodType<Req>;

  /** The standard request takes a path without zod when it is plainly valid (same answers, see request.ts). */
  override parseRequest(body: unknown): Req | RequestFailure {
    if (this.requestSchema === (CompletionRequest as unknown)) {
      const plain = parsePlainCompletionRequest(body);
      if (plain) return plain as Req;
    }
    return super.parseRequest(body);
  }

  /** The final prompt for one request; throw a RequestFailure to refuse the request. */
  abstract formatPrompt(request: Req, ctx: StageContext<Cfg>): string | Promise<string>;

  /**
   * Whether a chat message's content may hold control tokens (`<|im_end|>`, `</s>`) that the model
   * then sees as such. By default it may not: their text in a message is tokenized as plain text,
   * so that a user cannot forge a system turn. A handler whose messages are trusted to carry
   * control tokens sets this to true.
   */
  readonly controlTokensInMessages: boolean = false;

  /** The shim's generate request for one completion request and its prompt. */
  generateRequest(request: Req, prompt: string): GenerateRequest {
    const spans =
      request.messages && !this.controlTokensInMessages
        ? contentSpans(
            prompt,
            request.messages.map((m) => m.content),
          )
        : [];
    return {
      prompt,
      ...(spans.length > 0 ? { literal_spans: spans } : {}),
      max_tokens: request.max_tokens,
      temperature: request.temperature,
      // Passed as given: top_p 0 (the seed's default) keeps the top token, as transformers does.
      top_p: request.top_p,
      top_k: request.top_k,
      repetition_penalty: request.repetition_penalty,
      seed: request.seed,
      stop: request.stop,
      logprobs: computesLogprobs(request) ? request.logprobs : null,
      num_sequences: request.best_of,
      echo: request.echo,
      stream: request.stream,
      ...(request.structured ? { structured: request.structured } : {}),
    };
  }

  override async preprocess(requests: Req[], ctx: StageContext<Cfg>): Promise<Maybe<CompletionInput<Req>>[]> {
    const created = unixSeconds();
    return Promise.all(
      requests.map(async (request): Promise<Maybe<CompletionInput<Req>>> => {
        try {
          const prompt = await this.formatPrompt(request, ctx);
          if (typeof prompt !== "string") throw new Error(`formatPrompt returned ${typeof prompt}, not a string`);
          return this.completionInput(request, prompt, ctx, created);
        } catch (error) {
          return RequestFailure.from(error);
        }
      }),
    );
  }

  /** What inference needs for one request and its final prompt (`v1/completions` sends its prompts here as they are). */
  completionInput(request: Req, prompt: string, ctx: StageContext<Cfg>, created = unixSeconds()): CompletionInput<Req> {
    return {
      request,
      prompt,
      generate: this.generateRequest(request, prompt),
      id: responseId("cmpl-"),
      created,
      model: request.model ?? ctx.modelName,
    };
  }

  /** OpenAI's API under `v1/` (completions, chat/completions, models); add your own routes to these. */
  override routes(): readonly Route<Cfg>[] {
    return openaiRoutes<Cfg>(this);
  }

  /** A 404 naming the path; under `v1/`, in OpenAI's error shape. */
  override unknownRoute(path: string): RequestFailure {
    const failure = super.unknownRoute(path);
    return path.startsWith("v1/") ? asOpenAIFailure(failure) : failure;
  }

  override async inference(inputs: CompletionInput<Req>[], ctx: StageContext<Cfg>): Promise<Maybe<CompletionOutput<Req>>[]> {
    // A delta's request_index is a position in this generate call's requests (= in `inputs`).
    const streaming = inputs.some((input) => input.request.stream);
    const onDelta = (delta: GenerationDelta) => {
      const input = inputs[delta.request_index];
      const requestIndex = ctx.requestIndices[delta.request_index];
      if (!input?.request.stream || requestIndex === undefined) return;
      ctx.stream(requestIndex, this.streamChunk(input, delta, ctx));
    };
    const outcomes = await ctx.model.generate(
      inputs.map((input) => input.generate),
      streaming ? { onDelta } : {},
    );
    if (outcomes.length !== inputs.length) {
      throw new Error(`generate returned ${outcomes.length} outcomes for ${inputs.length} requests`);
    }
    return outcomes.map((outcome, position) =>
      outcome.ok ? { input: inputs[position]!, outcome } : new RequestFailure(outcome.status, outcome.message, outcome.field),
    );
  }

  override async postprocess(outputs: CompletionOutput<Req>[], ctx: StageContext<Cfg>): Promise<Maybe<unknown>[]> {
    return outputs.map((output) => {
      try {
        return output.input.request.stream ? this.finalChunk(output, ctx) : this.responseBody(output, ctx);
      } catch (error) {
        return RequestFailure.from(error);
      }
    });
  }

  /** The body of one streamed chunk: the new text of one choice, its logprobs when the request asked (`logprobs > 0`). */
  streamChunk(input: CompletionInput<Req>, delta: GenerationDelta, _ctx: StageContext<Cfg>): unknown {
    const chunk: CompletionChunk = {
      id: input.id,
      object: "text_completion",
      created: input.created,
      model: input.model,
      choices: [
        {
          text: delta.text,
          index: delta.sequence_index,
          finish_reason: null,
          logprobs: input.request.logprobs > 0 && delta.logprobs ? choiceLogprobs(delta.logprobs) : null,
        },
      ],
    };
    return chunk;
  }

  /** The last chunk of a streamed request: no new text, each choice's `finish_reason`, and `usage`. */
  finalChunk(output: CompletionOutput<Req>, ctx: StageContext<Cfg>): unknown {
    const body = this.responseBody(output, ctx);
    const chunk: CompletionChunk = {
      id: body.id,
      object: "text_completion",
      created: body.created,
      model: body.model,
      choices: body.choices.map((choice) => ({ text: "", index: choice.index, finish_reason: choice.finish_reason, logprobs: null })),
      usage: body.usage,
      raw_compute_time: body.raw_compute_time,
    };
    return chunk;
  }

  /**
   * The response body: the `n` sequences with the highest cumulative logprob
   * out of `best_of` (in generation order when `best_of == n`), indexed
   * 0..n-1; with `echo`, the prompt's text and token logprobs come first.
   * `logprobs` is always given (the seed always returned it).
   */
  responseBody(output: CompletionOutput<Req>, _ctx: StageContext<Cfg>): CompletionResponse {
    const { input, outcome } = output;
    const { request } = input;
    if (outcome.sequences.length < request.n) {
      throw new Error(`generate returned ${outcome.sequences.length} sequences, the request asked for n=${request.n}`);
    }
    const chosen =
      request.best_of > request.n
        ? outcome.sequences
            .map((sequence, order) => ({ sequence, order }))
            .sort((a, b) => b.sequence.cumulative_logprob - a.sequence.cumulative_logprob || a.order - b.order)
            .slice(0, request.n)
            .map(({ sequence }) => sequence)
        : outcome.sequences.slice(0, request.n);
    const choices: Choice[] = chosen.map((sequence, index) => {
      if (!request.echo) {
        return { text: sequence.text, index, finish_reason: sequence.finish_reason, logprobs: choiceLogprobs(sequence.logprobs) };
      }
      return {
        text: input.prompt + sequence.text,
        index,
        finish_reason: sequence.finish_reason,
        logprobs: echoLogprobs(outcome.prompt, sequence.logprobs, codePoints(input.prompt)),
      };
    });
    const completionTokens = outcome.sequences.reduce((sum, sequence) => sum + generatedTokens(sequence), 0);
    return {
      id: input.id,
      object: "text_completion",
      created: input.created,
      model: input.model,
      choices,
      usage: {
        prompt_tokens: outcome.prompt_tokens,
        completion_tokens: completionTokens,
        total_tokens: outcome.prompt_tokens + completionTokens,
      },
      raw_compute_time: outcome.compute_time,
    };
  }
}

/** What a sequence cost in generated tokens, as vLLM counts `completion_tokens`: its stop token included. */
export function generatedTokens(sequence: Sequence): number {
  return sequence.generated_tokens ?? sequence.logprobs.tokens.length;
}

/** The response's view of the shim's token logprobs (token ids left out). */
export function choiceLogprobs(lp: TokenLogprobs): ChoiceLogprobs {
  return {
    tokens: [...lp.tokens],
    token_logprobs: [...lp.token_logprobs],
    top_logprobs: [...lp.top_logprobs],
    text_offset: [...lp.text_offset],
  };
}

/**
 * Prompt tokens first (the very first one has no logprob: nothing precedes
 * it), then the completion's, whose text offsets move past the prompt. The
 * shim counts offsets in code points (Python string indices): the prompt's
 * from the start of the prompt, a sequence's from the start of its text.
 */
export function echoLogprobs(prompt: TokenLogprobs, completion: TokenLogprobs, promptLength: number): ChoiceLogprobs {
  const promptLogprobs = [...prompt.token_logprobs];
  if (promptLogprobs.length > 0) promptLogprobs[0] = null;
  return {
    tokens: [...prompt.tokens, ...completion.tokens],
    token_logprobs: [...promptLogprobs, ...completion.token_logprobs],
    top_logprobs: [...prompt.top_logprobs.map((top, i) => (i === 0 ? null : top)), ...completion.top_logprobs],
    text_offset: [...prompt.text_offset, ...completion.text_offset.map((offset) => offset + promptLength)],
  };
}

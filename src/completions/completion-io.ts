/**
 * What a completion handler's stages hand each other for one request, and
 * the id and creation time every completion response carries. Kept apart from
 * the handler class so that the OpenAI routes can use them without importing
 * the class that installs the routes.
 */
import { randomUUID } from "node:crypto";
import type { GenerateOutcome, GenerateRequest } from "../protocol/messages.ts";
import type { StageContext } from "../handler/context.ts";
import type { Maybe, RequestFailure } from "../handler/failure.ts";
import type { CompletionRequest } from "./request.ts";
import type { CompletionResponse } from "./response.ts";

export type GenerateSuccess = Extract<GenerateOutcome, { ok: true }>;

/** What preprocess hands to inference for one request. */
export interface CompletionInput<Req extends CompletionRequest = CompletionRequest> {
  request: Req;
  /** The final prompt string (what `formatPrompt` returned, or the text of the token ids a client sent). */
  prompt: string;
  generate: GenerateRequest;
  id: string;
  /** Unix seconds. */
  created: number;
  model: string;
}

/** What inference hands to postprocess for one request. */
export interface CompletionOutput<Req extends CompletionRequest = CompletionRequest> {
  input: CompletionInput<Req>;
  outcome: GenerateSuccess;
}

/** Now, in Unix seconds: a response's `created`. */
export const unixSeconds = (): number => Math.floor(Date.now() / 1000);

/** A response id: `prefix` and 32 random hex digits (`cmpl-…`, `chatcmpl-…`). */
export const responseId = (prefix: string): string => `${prefix}${randomUUID().replaceAll("-", "")}`;

/**
 * What the OpenAI and tokenizer routes use of a completion handler
 * (CompletionHandler has all of it): the routes take this, not the class, so
 * that the class can install them without an import circle.
 */
export interface CompletionStages {
  parseRequest(body: unknown): CompletionRequest | RequestFailure;
  // biome-ignore-start lint/suspicious/noExplicitAny: a handler of any config: the context's config type is a parameter of these methods
  preprocess(requests: CompletionRequest[], ctx: StageContext<any>): Promise<Maybe<CompletionInput>[]>;
  inference(inputs: CompletionInput[], ctx: StageContext<any>): Promise<Maybe<CompletionOutput>[]>;
  completionInput(request: CompletionRequest, prompt: string, ctx: StageContext<any>): CompletionInput;
  responseBody(output: CompletionOutput, ctx: StageContext<any>): CompletionResponse;
  // biome-ignore-end lint/suspicious/noExplicitAny: a handler of any config
}

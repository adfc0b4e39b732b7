/**
 * The response body of a completion (OpenAI/Together "text_completion"
 * shape, a superset of what the seed returned), and the chunk bodies of a
 * streamed one.
 */
import { z } from "zod";

export const ChoiceLogprobs = z.object({
  tokens: z.array(z.string()),
  token_logprobs: z.array(z.number().nullable()),
  top_logprobs: z.array(z.record(z.string(), z.number()).nullable()),
  text_offset: z.array(z.number().int()),
});
export type ChoiceLogprobs = z.infer<typeof ChoiceLogprobs>;

export const Choice = z.object({
  text: z.string(),
  index: z.number().int().min(0),
  finish_reason: z.enum(["stop", "length"]),
  logprobs: ChoiceLogprobs.nullable(),
});
export type Choice = z.infer<typeof Choice>;

export const Usage = z.object({
  prompt_tokens: z.number().int().min(0),
  completion_tokens: z.number().int().min(0),
  total_tokens: z.number().int().min(0),
});
export type Usage = z.infer<typeof Usage>;

export const CompletionResponse = z.object({
  id: z.string(),
  object: z.literal("text_completion"),
  created: z.number().int(),
  model: z.string(),
  choices: z.array(Choice),
  usage: Usage,
  /** Seconds the model spent on this request's generation (as the seed reported it). */
  raw_compute_time: z.number(),
});
export type CompletionResponse = z.infer<typeof CompletionResponse>;

/** One streamed piece: new text of one choice. The final chunk has `finish_reason` set and `usage`. */
export const CompletionChunk = z.object({
  id: z.string(),
  object: z.literal("text_completion"),
  created: z.number().int(),
  model: z.string(),
  choices: z.array(
    z.object({
      text: z.string(),
      index: z.number().int().min(0),
      finish_reason: z.enum(["stop", "length"]).nullable(),
      logprobs: ChoiceLogprobs.nullable(),
    }),
  ),
  usage: Usage.optional(),
  raw_compute_time: z.number().optional(),
});
export type CompletionChunk = z.infer<typeof CompletionChunk>;

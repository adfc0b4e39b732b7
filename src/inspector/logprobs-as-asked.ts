/**
 * While the inspector is on, each generate call asks for INSPECT_TOP_LOGPROBS
 * alternatives per token (the page shows them on hover); the handler must
 * still see what it asked for, so its outcomes are cut back to that. A call
 * that asked for none (`logprobs: null`) sees what the engine then reports:
 * every logprob 0, no alternatives.
 */
import type { GenerateOutcome, GenerationDelta, TokenLogprobs } from "../protocol/messages.ts";

export const INSPECT_TOP_LOGPROBS = 5;

function topK(top: Record<string, number> | null, k: number): Record<string, number> | null {
  if (top === null || k === 0) return null;
  return Object.fromEntries(
    Object.entries(top)
      .sort(([, a], [, b]) => b - a)
      .slice(0, k),
  );
}

export function logprobsAsAsked(logprobs: TokenLogprobs, asked: number | null): TokenLogprobs {
  if (asked === null)
    return { ...logprobs, token_logprobs: logprobs.token_logprobs.map(() => 0), top_logprobs: logprobs.top_logprobs.map(() => null) };
  if (asked >= INSPECT_TOP_LOGPROBS) return logprobs;
  return { ...logprobs, top_logprobs: logprobs.top_logprobs.map((top) => topK(top, asked)) };
}

export function outcomeAsAsked(outcome: GenerateOutcome, asked: number | null): GenerateOutcome {
  if (!outcome.ok || (asked !== null && asked >= INSPECT_TOP_LOGPROBS)) return outcome;
  return {
    ...outcome,
    prompt: logprobsAsAsked(outcome.prompt, asked),
    sequences: outcome.sequences.map((sequence) => ({ ...sequence, logprobs: logprobsAsAsked(sequence.logprobs, asked) })),
  };
}

export function deltaAsAsked(delta: GenerationDelta, asked: number | null): GenerationDelta {
  return delta.logprobs === null ? delta : { ...delta, logprobs: logprobsAsAsked(delta.logprobs, asked) };
}

import { describe, expect, it } from "vitest";
import { deltaAsAsked, INSPECT_TOP_LOGPROBS, outcomeAsAsked } from "../../../src/inspector/logprobs-as-asked.ts";
import type { GenerateOutcome, TokenLogprobs } from "../../../src/protocol/messages.ts";

const top = { a: -0.1, b: -2, c: -1, d: -3, e: -4 };
const logprobs: TokenLogprobs = { tokens: ["a"], token_ids: [1], token_logprobs: [-0.1], top_logprobs: [top], text_offset: [0] };
const outcome: GenerateOutcome = {
  ok: true,
  prompt: logprobs,
  sequences: [{ text: "a", finish_reason: "stop", logprobs, cumulative_logprob: -0.1 }],
  prompt_tokens: 1,
  compute_time: 0,
};

describe("the handler's view of logprobs while the inspector asks for more", () => {
  it("is null per token where the handler asked for none", () => {
    const seen = outcomeAsAsked(outcome, 0);
    expect(seen.ok && seen.sequences[0]!.logprobs.top_logprobs).toEqual([null]);
    expect(seen.ok && seen.prompt.top_logprobs).toEqual([null]);
  });

  it("reports every logprob 0 and no alternatives where the handler asked for no logprobs at all (null), as the engine would", () => {
    const seen = outcomeAsAsked(outcome, null);
    expect(seen.ok && seen.sequences[0]!.logprobs).toMatchObject({ token_logprobs: [0], top_logprobs: [null], tokens: ["a"] });
    const delta = { call_id: 1, request_index: 0, sequence_index: 0, text: "a", logprobs };
    expect(deltaAsAsked(delta, null).logprobs).toMatchObject({ token_logprobs: [0], top_logprobs: [null] });
  });

  it("keeps the most likely `asked` alternatives, and leaves what it asked in full alone", () => {
    const seen = outcomeAsAsked(outcome, 2);
    expect(seen.ok && seen.sequences[0]!.logprobs.top_logprobs).toEqual([{ a: -0.1, c: -1 }]);
    expect(outcomeAsAsked(outcome, INSPECT_TOP_LOGPROBS)).toBe(outcome);
    const delta = { call_id: 1, request_index: 0, sequence_index: 0, text: "a", logprobs };
    expect(deltaAsAsked(delta, 1).logprobs?.top_logprobs).toEqual([{ a: -0.1 }]);
  });
});

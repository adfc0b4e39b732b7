// The journal of one batch, alone: streamed text is posted in pieces as it comes (not per token), and
// a model call's journaling that fails (a tokenize refused) fails neither the call nor the request.
import { describe, expect, it } from "vitest";
import { inspectorFor } from "../../../src/inspector/journal-client.ts";
import type { JournalEvent } from "../../../src/inspector/journal.ts";
import type { ModelClient } from "../../../src/handler/model.ts";
import type { GenerateOutcome } from "../../../src/protocol/messages.ts";
import { greedyRequest } from "../../fixtures/greedy-request.ts";

const empty = { tokens: [], token_ids: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
const done: GenerateOutcome = {
  ok: true,
  prompt: empty,
  sequences: [{ text: "abc", finish_reason: "stop", logprobs: empty, cumulative_logprob: 0 }],
  prompt_tokens: 1,
  compute_time: 0,
};
const request = greedyRequest("p", 3, { seed: null, stream: true });

/** A model that streams "a", "b", "c" and whose tokenizer refuses. */
const streaming: ModelClient = {
  info: { name_or_path: "m", context_length: 8, vocab_size: 8, bos_token: null, eos_token: null, chat_template: null, device: "cpu" },
  async generate(_requests, options = {}) {
    for (const text of ["a", "b", "c"]) options.onDelta?.({ call_id: 1, request_index: 0, sequence_index: 0, text, logprobs: null });
    return [done];
  },
  tokenize: () => Promise.reject(new Error("too long")),
  detokenize: () => Promise.reject(new Error("too long")),
};

describe("a batch's journal", () => {
  it("posts the streamed text in pieces, the handler still sees every delta, and a failed journaling is dropped", async () => {
    const events: JournalEvent[] = [];
    const journal = inspectorFor((event) => events.push(event)).begin(1, [{ body: { prompt: "p" } }]);
    const seen: string[] = [];
    const outcomes = await journal.model(streaming).generate([request], { onDelta: (delta) => seen.push(delta.text) });
    expect(outcomes).toEqual([done]);
    expect(seen).toEqual(["a", "b", "c"]);
    journal.finish([{ ok: true, body: { text: "abc" } }]);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(events.map((event) => event.kind)).toEqual(["start", "delta", "end"]);
    expect(events[1]).toEqual({ kind: "delta", ids: [`${process.pid}-1-0`], text: "abc" });
  });
});

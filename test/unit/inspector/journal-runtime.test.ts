// The Node child's journal (batch-journal.ts, recording-model.ts, journal-client.ts) through the real
// runtime: what it posts per request while the inspector is on, and that the handler sees what it asked.
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import type { JournalEvent } from "../../../src/inspector/journal.ts";
import { inspectorFor } from "../../../src/inspector/journal-client.ts";
import { Connection } from "../../../src/protocol/connection.ts";
import type { GenerateRequest } from "../../../src/protocol/messages.ts";
import { Detokenize, Generate, Handle, Initialize, Tokenize } from "../../../src/protocol/methods.ts";
import { startRuntime } from "../../../src/runtime/bridge-endpoint.ts";
import EchoHandler from "../../fixtures/handlers/echo-handler.ts";
import { initializeParams } from "../runtime/initialize-params.ts";

const VOCAB: Record<number, string> = { 1: "<s>", 7: "he", 8: "llo" };

/** A shim whose model answers "+" per token, with `logprobs` alternatives per token as asked. */
function shim(events: JournalEvent[] | undefined) {
  const toNode = new PassThrough();
  const fromNode = new PassThrough();
  const inspector = events ? inspectorFor((event) => events.push(event)) : undefined;
  startRuntime(EchoHandler, { input: toNode, output: fromNode, log: () => {}, ...(inspector ? { inspector } : {}) });
  const connection = new Connection(fromNode, toNode);
  const asked: number[] = [];
  const tokens = (n: number, k: number) => ({
    tokens: Array(n).fill("+"),
    token_ids: Array(n).fill(9),
    token_logprobs: Array(n).fill(-0.5),
    top_logprobs: Array(n).fill(k === 0 ? null : Object.fromEntries(Array.from({ length: k }, (_, j) => [`t${j}`, -(j + 1)]))),
    text_offset: Array.from({ length: n }, (_, j) => j),
  });
  connection.onRequest(Generate, ({ requests }) => ({
    outcomes: requests.map((r: GenerateRequest) => {
      asked.push(r.logprobs ?? 0);
      const sequence = {
        text: "+".repeat(r.max_tokens),
        finish_reason: "length" as const,
        cumulative_logprob: 0,
        logprobs: tokens(r.max_tokens, r.logprobs ?? 0),
      };
      return { ok: true as const, prompt: tokens(0, 0), sequences: [sequence], prompt_tokens: 3, cached_tokens: 1, compute_time: 0.002 };
    }),
  }));
  connection.onRequest(Tokenize, () => ({ ids: [[1, 7, 8]] }));
  connection.onRequest(Detokenize, ({ ids, skip_special_tokens }) => ({
    texts: ids.map(([id]) => (skip_special_tokens && id === 1 ? "" : (VOCAB[id!] ?? "?"))),
  }));
  return { connection, asked };
}

async function handle(connection: Connection, requests: { body: unknown }[]) {
  await connection.sendRequest(Initialize, initializeParams("echo", 4));
  return (await connection.sendRequest(Handle, { batch_id: 7, requests })).responses;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

describe("the inspector's journal in the runtime", () => {
  it("posts each request's start, its model calls with tokens, its stages and its answer; the handler's answer is the same", async () => {
    const events: JournalEvent[] = [];
    const on = shim(events);
    const off = shim(undefined);
    const batch = [{ body: { prompt: "hello", max_tokens: 2 } }, { body: { prompt: 5 } }];
    const [withJournal, without] = [await handle(on.connection, batch), await handle(off.connection, batch)];
    await settle();
    expect(withJournal).toEqual(without);
    expect(on.asked).toEqual([5]); // alternatives asked for the page
    expect(off.asked).toEqual([0]);
    expect(events.map((e) => e.kind).sort()).toEqual(["call", "end", "end", "hello", "start", "start"]);
    const call = events.find((e) => e.kind === "call")!;
    expect(call.kind === "call" && call.call.promptChips.map((chip) => [chip.text, chip.kind])).toEqual([
      ["<s>", "special"],
      ["he", "content"],
      ["llo", "content"],
    ]);
    expect(call.kind === "call" && call.call.outcome).toMatchObject({ ok: true, text: "++", cachedTokens: 1, computeMs: 2 });
    expect(call.kind === "call" && call.call.outcome.ok && call.call.outcome.tokens[0]!.top).toEqual({
      t0: -1,
      t1: -2,
      t2: -3,
      t3: -4,
      t4: -5,
    });
    const ends = events.flatMap((e) => (e.kind === "end" ? [e] : []));
    expect(ends[0]!.stages.map((s) => s.stage)).toEqual(["preprocess", "inference", "postprocess"]);
    expect(ends[0]!.end).toEqual({ status: 200, body: { texts: ["++"] } });
    expect(ends[1]!.end.error).toMatchObject({ field: "prompt", stage: "request validation" });
  });

  it("names the stage that threw and where, as the terminal does", async () => {
    const events: JournalEvent[] = [];
    const { connection } = shim(events);
    await handle(connection, [{ body: { prompt: "x", fault: "throw-preprocess" } }]);
    const end = events.find((e) => e.kind === "end");
    expect(end?.kind === "end" && end.end).toMatchObject({
      status: 500,
      error: { stage: "preprocess", location: expect.stringMatching(/echo-handler\.ts:\d+:\d+$/) },
    });
  });
});

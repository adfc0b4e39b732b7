import { describe, expect, it } from "vitest";
import { CompletionHandler } from "../../../src/completions/completion-handler.ts";
import { CompletionResponse, CompletionChunk } from "../../../src/completions/response.ts";
import { z } from "zod";
import {
  completionRequestSchema,
  CompletionRequest as CompletionRequestSchema,
  type CompletionRequest,
} from "../../../src/completions/request.ts";
import { RequestFailure } from "../../../src/handler/failure.ts";
import type { GenerateOutcome, Sequence, TokenLogprobs } from "../../../src/protocol/messages.ts";
import { FakeModel, fakeOutcome, runHandler } from "../../../src/testing/index.ts";

/** Prompt = "P:" + prompt; a prompt containing "REFUSE" is refused; one containing "THROW" throws. */
class EchoHandler extends CompletionHandler {
  override formatPrompt(request: CompletionRequest): string {
    const text = request.prompt ?? request.messages!.map((m) => m.content).join("|");
    if (text.includes("REFUSE")) throw RequestFailure.badRequest("prompt: refused by the handler", "prompt");
    if (text.includes("THROW")) throw new Error("formatPrompt blew up");
    return `P:${text}`;
  }
}

const lp = (tokens: string[], offsets: number[], logprobs: (number | null)[]): TokenLogprobs => ({
  tokens,
  token_ids: tokens.map((_, i) => i),
  token_logprobs: logprobs,
  top_logprobs: tokens.map(() => null),
  text_offset: offsets,
});
const seq = (text: string, cumulative: number, finish: "stop" | "length" = "length"): Sequence => ({
  text,
  finish_reason: finish,
  cumulative_logprob: cumulative,
  logprobs: lp(
    [...text],
    [...text].map((_, i) => i),
    [...text].map(() => cumulative / Math.max(1, text.length)),
  ),
});
const outcome = (sequences: Sequence[], prompt = lp(["<s>", "P:", "x"], [0, 0, 2], [null, -2, -3])): GenerateOutcome => ({
  ok: true,
  prompt,
  sequences,
  prompt_tokens: prompt.tokens.length,
  compute_time: 0.25,
});

describe("CompletionHandler", () => {
  it("sends one batched generate with each request's parameters, best_of as num_sequences", async () => {
    const model = new FakeModel();
    await runHandler(
      new EchoHandler(),
      [
        {
          prompt: "a",
          max_tokens: 5,
          temperature: 0.5,
          top_p: 0,
          top_k: 7,
          logprobs: 2,
          stop: "\n",
          seed: 9,
          n: 2,
          best_of: 3,
          repetition_penalty: 1.2,
        },
        { prompt: "b" },
      ],
      { model },
    );
    expect(model.calls).toHaveLength(1);
    expect(model.calls[0]!.requests).toEqual([
      {
        prompt: "P:a",
        max_tokens: 5,
        temperature: 0.5,
        top_p: 0,
        top_k: 7,
        repetition_penalty: 1.2,
        seed: 9,
        stop: ["\n"],
        logprobs: 2,
        num_sequences: 3,
        echo: false,
        stream: false,
      },
      {
        prompt: "P:b",
        max_tokens: 16,
        temperature: 0.8,
        top_p: 0,
        top_k: 50,
        repetition_penalty: 1,
        seed: 0,
        stop: [],
        logprobs: 0,
        num_sequences: 1,
        echo: false,
        stream: false,
      },
    ]);
  });

  it("builds the response body: choices, usage, raw_compute_time, id, object, model", async () => {
    const model = new FakeModel({ script: [outcome([seq("hello", -2, "stop")])] });
    const { outcomes } = await runHandler(new EchoHandler(), [{ prompt: "x", model: "my-model" }], { model });
    expect(outcomes[0]!.ok).toBe(true);
    const body = CompletionResponse.parse((outcomes[0] as { body: unknown }).body);
    expect(body).toMatchObject({
      object: "text_completion",
      model: "my-model",
      choices: [
        { text: "hello", index: 0, finish_reason: "stop", logprobs: { tokens: ["h", "e", "l", "l", "o"], text_offset: [0, 1, 2, 3, 4] } },
      ],
      usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 },
      raw_compute_time: 0.25,
    });
    expect(body.id).toMatch(/^cmpl-[0-9a-f]{32}$/);
    expect(Math.abs(body.created - Date.now() / 1000)).toBeLessThan(60);
  });

  it("counts completion_tokens as generated, the stop token included, where the engine says how many (vLLM's count)", async () => {
    const model = new FakeModel({ script: [outcome([{ ...seq("hello", -2, "stop"), generated_tokens: 6 }, seq("hi", -1)])] });
    const { outcomes } = await runHandler(new EchoHandler(), [{ prompt: "x", n: 2, temperature: 1 }], { model });
    const body = CompletionResponse.parse((outcomes[0] as { body: unknown }).body);
    expect(body.usage).toEqual({ prompt_tokens: 3, completion_tokens: 6 + 2, total_tokens: 11 });
  });

  it("names the model after the served model when the request does not", async () => {
    const { outcomes } = await runHandler(new EchoHandler(), [{ prompt: "x" }], { modelName: "served-name" });
    expect((outcomes[0] as { body: { model: string } }).body.model).toBe("served-name");
  });

  it("keeps the n of best_of sequences with the highest cumulative logprob, indexed 0..n-1", async () => {
    const model = new FakeModel({ script: [outcome([seq("aa", -5), seq("bb", -1), seq("cc", -3), seq("dd", -9)])] });
    const { outcomes } = await runHandler(new EchoHandler(), [{ prompt: "x", n: 2, best_of: 4 }], { model });
    const body = (outcomes[0] as { body: CompletionResponse }).body;
    expect(body.choices.map((c) => [c.index, c.text])).toEqual([
      [0, "bb"],
      [1, "cc"],
    ]);
    expect(body.usage.completion_tokens).toBe(8);
  });

  it("keeps generation order when best_of equals n", async () => {
    const model = new FakeModel({ script: [outcome([seq("aa", -5), seq("bb", -1)])] });
    const { outcomes } = await runHandler(new EchoHandler(), [{ prompt: "x", n: 2 }], { model });
    expect((outcomes[0] as { body: CompletionResponse }).body.choices.map((c) => c.text)).toEqual(["aa", "bb"]);
  });

  it("with echo, prepends the formatted prompt and its token logprobs (the first one null), shifting completion offsets", async () => {
    const prompt = lp(["<s>", "P:", "é"], [0, 0, 2], [-0.5, -2, -3]);
    const model = new FakeModel({ script: [outcome([seq("ok", -1)], prompt)] });
    const { outcomes } = await runHandler(new EchoHandler(), [{ prompt: "é", echo: true, logprobs: 1 }], { model });
    expect(model.requests[0]!.echo).toBe(true);
    const choice = (outcomes[0] as { body: CompletionResponse }).body.choices[0]!;
    expect(choice.text).toBe("P:éok");
    expect(choice.logprobs).toEqual({
      tokens: ["<s>", "P:", "é", "o", "k"],
      token_logprobs: [null, -2, -3, -0.5, -0.5],
      top_logprobs: [null, null, null, null, null],
      text_offset: [0, 0, 2, 3, 4],
    });
  });

  it("returns logprobs even when the request asked for logprobs 0, as the seed did", async () => {
    const { outcomes } = await runHandler(new EchoHandler(), [{ prompt: "x", logprobs: 0 }], {
      model: new FakeModel({ respond: () => "abc" }),
    });
    const choice = (outcomes[0] as { body: CompletionResponse }).body.choices[0]!;
    expect(choice.logprobs?.tokens).toEqual(["a", "b", "c"]);
    expect(choice.logprobs?.token_logprobs).toEqual([-1, -1, -1]);
  });

  it("refuses one request in preprocess without touching its batch mates", async () => {
    const model = new FakeModel({ respond: (r) => r.prompt.toUpperCase() });
    const { outcomes } = await runHandler(
      new EchoHandler(),
      [{ prompt: "a" }, { prompt: "REFUSE" }, { prompt: "THROW" }, { prompt: "b" }],
      { model },
    );
    expect(model.prompts).toEqual(["P:a", "P:b"]);
    expect(outcomes.map((o) => o.ok)).toEqual([true, false, false, true]);
    expect(outcomes[1]).toMatchObject({ status: 400, message: "prompt: refused by the handler", field: "prompt" });
    expect(outcomes[2]).toMatchObject({
      status: 500,
      message: expect.stringMatching(
        /^formatPrompt blew up \(in formatPrompt at test\/unit\/completions\/completion-handler\.test\.ts:\d+:\d+\)$/,
      ),
    });
    expect((outcomes[3] as { body: CompletionResponse }).body.choices[0]!.text).toBe("P:B");
  });

  it("turns a failed generate outcome into that request's failure with the shim's status and message", async () => {
    const model = new FakeModel({
      respond: (r) => (r.prompt === "P:long" ? { ok: false, status: 400, message: "prompt: 5000 tokens, the context holds 4096" } : "fine"),
    });
    const { outcomes } = await runHandler(new EchoHandler(), [{ prompt: "long" }, { prompt: "short" }], { model });
    expect(outcomes[0]).toEqual({ ok: false, status: 400, message: "prompt: 5000 tokens, the context holds 4096" });
    expect(outcomes[1]!.ok).toBe(true);
  });

  it("fails a request whose outcome has fewer sequences than n, with a 500", async () => {
    const model = new FakeModel({ respond: (r) => fakeOutcome(r, ["only one"]) });
    const { outcomes } = await runHandler(new EchoHandler(), [{ prompt: "x", n: 2 }], { model });
    expect(outcomes[0]).toMatchObject({ ok: false, status: 500 });
  });

  it("streams one chunk per delta for streaming requests only, then answers with a final chunk carrying finish_reason and usage", async () => {
    const model = new FakeModel({ respond: (r) => (r.prompt === "P:s" ? ["hi", "yo"] : "plain") });
    const { outcomes, streamed } = await runHandler(
      new EchoHandler(),
      [{ prompt: "n" }, { prompt: "s", stream: true, n: 2, logprobs: 1, max_tokens: 2 }],
      { model },
    );
    expect(model.calls[0]!.options?.onDelta).toBeTypeOf("function");
    expect(streamed.map((s) => s.requestIndex)).toEqual([1, 1]);
    const chunks = streamed.map((s) => CompletionChunk.parse(s.body));
    expect(chunks.map((c) => c.choices[0]!)).toEqual([
      {
        text: "hi",
        index: 0,
        finish_reason: null,
        logprobs: { tokens: ["h", "i"], token_logprobs: [-1, -1], top_logprobs: [{ h: -1 }, { i: -1 }], text_offset: [0, 1] },
      },
      {
        text: "yo",
        index: 1,
        finish_reason: null,
        logprobs: { tokens: ["y", "o"], token_logprobs: [-1, -1], top_logprobs: [{ y: -1 }, { o: -1 }], text_offset: [0, 1] },
      },
    ]);
    const final = CompletionChunk.parse((outcomes[1] as { body: unknown }).body);
    expect(final.choices).toEqual([
      { text: "", index: 0, finish_reason: "length", logprobs: null },
      { text: "", index: 1, finish_reason: "length", logprobs: null },
    ]);
    expect(final.usage).toEqual({ prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
    expect(final.id).toBe(chunks[0]!.id);
    expect((outcomes[0] as { body: CompletionResponse }).body.choices[0]!.text).toBe("plain");
  });

  it("leaves logprobs out of stream chunks unless the request asked for them", async () => {
    const { streamed } = await runHandler(new EchoHandler(), [{ prompt: "s", stream: true }], {
      model: new FakeModel({ respond: () => "hi" }),
    });
    expect(CompletionChunk.parse(streamed[0]!.body).choices[0]!.logprobs).toBeNull();
  });

  it("sends no onDelta when no request streams", async () => {
    const model = new FakeModel();
    await runHandler(new EchoHandler(), [{ prompt: "a" }], { model });
    expect(model.calls[0]!.options?.onDelta).toBeUndefined();
  });

  it("maps stream deltas to the HTTP request index of the batch, not the position among live requests", async () => {
    const model = new FakeModel({ respond: () => "z" });
    const { streamed } = await runHandler(new EchoHandler(), [{ prompt: 1 }, { prompt: "s", stream: true }], { model });
    expect(streamed.map((s) => s.requestIndex)).toEqual([1]);
  });
});

describe("CompletionHandler.parseRequest", () => {
  it("answers a plain request without zod, with what the schema gives", () => {
    const handler = new EchoHandler();
    const body = { prompt: "a", max_tokens: 3, stop: "\n", extra: 1 };
    expect(handler.parseRequest(body)).toEqual(CompletionRequestSchema.parse(body));
    const refused = handler.parseRequest({ prompt: "a", max_tokens: -1 });
    expect(refused).toBeInstanceOf(RequestFailure);
    expect((refused as RequestFailure).message).toBe("max_tokens: must be ≥ 0");
  });

  it("leaves a handler's own request schema (extra fields) to zod", () => {
    class WithQuestion extends EchoHandler {
      override readonly requestSchema = completionRequestSchema({ question: z.string({ error: "must be a string" }) }) as never;
    }
    const refused = new WithQuestion().parseRequest({ prompt: "a", question: 7 });
    expect(refused).toBeInstanceOf(RequestFailure);
    expect((refused as RequestFailure).field).toBe("question");
    expect(new WithQuestion().parseRequest({ prompt: "a", question: "q" })).toMatchObject({ prompt: "a", question: "q" });
  });
});

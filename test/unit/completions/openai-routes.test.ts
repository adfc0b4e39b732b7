// The OpenAI routes of a CompletionHandler, offline: the runtime's batch
// runner with a scripted model. What the model is asked (raw prompts for
// v1/completions, the chat format for v1/chat/completions, OpenAI's defaults),
// the response shapes, server-sent events, and errors in OpenAI's shape.
import { describe, expect, it } from "vitest";
import { Llama2ChatHandler } from "../../../src/completions/prompt-format-handlers.ts";
import { CHAT_DEFAULT_MAX_TOKENS } from "../../../src/completions/openai-request.ts";
import { SSE_CONTENT_TYPE } from "../../../src/completions/sse.ts";
import { runBatch } from "../../../src/runtime/pipeline.ts";
import { FakeModel, makeContext } from "../../../src/testing/index.ts";
import type { GenerateRequest, IncomingRequest, RequestOutcome } from "../../../src/protocol/messages.ts";

const COMPLETIONS = "v1/completions";
const CHAT = "v1/chat/completions";

async function run(requests: IncomingRequest[], respond: (prompt: string, request: GenerateRequest) => string | string[] = () => "abc") {
  const model = new FakeModel({ respond: (request) => respond(request.prompt, request) });
  const handler = new Llama2ChatHandler();
  const streamed: { requestIndex: number; body: unknown }[] = [];
  const ctx = makeContext({ model, handler, modelName: "llama" });
  const outcomes = await runBatch(handler, ctx, requests, { stream: (requestIndex, body) => streamed.push({ requestIndex, body }) });
  return { outcomes, model, streamed };
}

const body = (outcome: RequestOutcome | undefined): any => {
  if (!outcome?.ok) throw new Error(`not ok: ${JSON.stringify(outcome)}`);
  return outcome.body;
};

/** The JSON events of a server-sent event stream, `[DONE]` as the string. */
function sseEvents(text: string): unknown[] {
  expect(text.endsWith("\n\n")).toBe(true);
  return text
    .split("\n\n")
    .filter(Boolean)
    .map((event) => {
      expect(event.startsWith("data: ")).toBe(true);
      const data = event.slice("data: ".length);
      return data === "[DONE]" ? data : JSON.parse(data);
    });
}

describe("v1/completions", () => {
  it("sends each prompt to the model as it is, with OpenAI's defaults, and lists the choices prompt by prompt", async () => {
    const { outcomes, model } = await run([{ url_path: COMPLETIONS, body: { prompt: ["Hi", "Yo"], n: 2, seed: 3, model: "m" } }], (p) => [
      `${p}-1`,
      `${p}-2`,
    ]);
    expect(model.prompts).toEqual(["Hi", "Yo"]);
    expect(model.requests[0]).toMatchObject({
      temperature: 1,
      top_p: 1,
      top_k: 0,
      max_tokens: 16,
      seed: 3,
      num_sequences: 2,
      logprobs: null,
      echo: false,
    });
    const response = body(outcomes[0]);
    expect(response).toMatchObject({ object: "text_completion", model: "m" });
    expect(response.id).toMatch(/^cmpl-[0-9a-f]{32}$/);
    expect(response.choices.map((c: any) => [c.index, c.text, c.logprobs])).toEqual([
      [0, "Hi-1", null],
      [1, "Hi-2", null],
      [2, "Yo-1", null],
      [3, "Yo-2", null],
    ]);
    expect(response.usage).toEqual({ prompt_tokens: 4, completion_tokens: 16, total_tokens: 20 });
    expect(response).not.toHaveProperty("raw_compute_time");
  });

  it("sends no seed when the client gave none (OpenAI's sampling is unseeded), and the client's when it did", async () => {
    const { model } = await run([
      { url_path: COMPLETIONS, body: { prompt: "a" } },
      { url_path: COMPLETIONS, body: { prompt: "a", seed: 5 } },
    ]);
    expect(model.requests.map((r) => r.seed)).toEqual([null, 5]);
  });

  it("asks the engine for logprobs only when the client wants them, the prompt is echoed or best_of ranks by them", async () => {
    const { model } = await run([
      { url_path: COMPLETIONS, body: { prompt: "a" } },
      { url_path: COMPLETIONS, body: { prompt: "a", logprobs: 2 } },
      { url_path: COMPLETIONS, body: { prompt: "a", echo: true } },
      { url_path: COMPLETIONS, body: { prompt: "a", n: 1, best_of: 2 } },
      { url_path: CHAT, body: { messages: [{ role: "user", content: "a" }] } },
      { url_path: CHAT, body: { messages: [{ role: "user", content: "a" }], logprobs: true } },
      { url_path: "", body: { prompt: "a" } },
    ]);
    expect(model.requests.map((r) => r.logprobs)).toEqual([null, 2, 0, 0, null, 1, 0]);
  });

  it("gives logprobs in OpenAI's shape with at most `logprobs` alternatives (0: none), and echo with max_tokens 0", async () => {
    const { outcomes, model } = await run(
      [
        { url_path: COMPLETIONS, body: { prompt: "ab", logprobs: 0, temperature: 0 } },
        { url_path: COMPLETIONS, body: { prompt: "ab", logprobs: 1, echo: true, max_tokens: 0, temperature: 0 } },
      ],
      () => "xy",
    );
    expect(model.requests.map((r) => r.logprobs)).toEqual([1, 1]);
    expect(body(outcomes[0]).choices[0].logprobs).toEqual({
      tokens: ["x", "y"],
      token_logprobs: [-1, -1],
      top_logprobs: [null, null],
      text_offset: [0, 1],
    });
    const echoed = body(outcomes[1]).choices[0];
    expect(echoed.text).toBe("abxy");
    expect(echoed.logprobs.token_logprobs.slice(0, 3)).toEqual([null, -1, -1]);
    expect(echoed.logprobs.top_logprobs[1]).toEqual({ b: -1 });
  });

  it("streams server-sent events: one chunk per delta, then the finish, the usage when asked, and [DONE]", async () => {
    const { outcomes, streamed } = await run(
      [{ url_path: COMPLETIONS, body: { prompt: "Hi", n: 2, stream: true, stream_options: { include_usage: true } } }],
      () => "ok",
    );
    expect(streamed.map((s) => s.requestIndex)).toEqual([0, 0]);
    const chunks = streamed.flatMap((s) => {
      expect(s.body).toMatchObject({ contentType: SSE_CONTENT_TYPE });
      return sseEvents((s.body as { text: string }).text);
    });
    expect(chunks.map((c: any) => c.choices.map((x: any) => [x.index, x.text, x.finish_reason]))).toEqual([
      [[0, "ok", null]],
      [[1, "ok", null]],
    ]);
    const last = outcomes[0] as { ok: true; body: string; content_type: string };
    expect(last.content_type).toBe(SSE_CONTENT_TYPE);
    const tail = sseEvents(last.body) as any[];
    expect(tail[0].choices).toEqual([
      { text: "", index: 0, finish_reason: "stop", logprobs: null },
      { text: "", index: 1, finish_reason: "stop", logprobs: null },
    ]);
    expect(tail[1]).toMatchObject({
      object: "text_completion",
      choices: [],
      usage: { prompt_tokens: 2, completion_tokens: 4, total_tokens: 6 },
    });
    expect(tail[2]).toBe("[DONE]");
    expect(new Set([...chunks, tail[0], tail[1]].map((c: any) => c.id)).size).toBe(1);
  });

  it("sends token-id prompts to the model as ids, their text (special tokens kept) as the prompt", async () => {
    const ids = [..."<s>Hi"].map((ch) => ch.codePointAt(0)!);
    const { outcomes, model } = await run(
      [{ url_path: COMPLETIONS, body: { prompt: [ids, [89, 111]], n: 2, seed: 1, max_tokens: 3 } }],
      (p) => [`${p}1`, `${p}2`],
    );
    expect(model.requests.map((r) => [r.prompt, r.prompt_token_ids])).toEqual([
      ["<s>Hi", ids],
      ["Yo", [89, 111]],
    ]);
    const response = body(outcomes[0]);
    expect(response.choices.map((c: any) => [c.index, c.text])).toEqual([
      [0, "<s>Hi1"],
      [1, "<s>Hi2"],
      [2, "Yo1"],
      [3, "Yo2"],
    ]);
    expect(response.usage).toEqual({ prompt_tokens: 7, completion_tokens: 4 * 3 + 2 * 3, total_tokens: 25 });
  });

  it("takes one list of token ids as one prompt, and mixes text and id prompts of different calls in one pass", async () => {
    const { outcomes, model } = await run(
      [
        { url_path: COMPLETIONS, body: { prompt: [72, 105], max_tokens: 1, temperature: 0 } },
        { url_path: COMPLETIONS, body: { prompt: "Hi", max_tokens: 1, temperature: 0 } },
      ],
      () => "!",
    );
    expect(model.calls).toHaveLength(1);
    expect(model.requests.map((r) => [r.prompt, r.prompt_token_ids])).toEqual([
      ["Hi", [72, 105]],
      ["Hi", undefined],
    ]);
    expect(body(outcomes[0]).choices.map((c: any) => c.text)).toEqual(body(outcomes[1]).choices.map((c: any) => c.text));
  });

  it("scores token-id prompts as lm-eval asks: echo, logprobs 1, max_tokens 0 and 1, the first prompt token null", async () => {
    const ids = [97, 98, 99];
    const { outcomes } = await run(
      [
        { url_path: COMPLETIONS, body: { prompt: [ids], echo: true, logprobs: 1, max_tokens: 1, temperature: 0, seed: 1234 } },
        { url_path: COMPLETIONS, body: { prompt: [ids, [100]], echo: true, logprobs: 1, max_tokens: 0, temperature: 0 } },
      ],
      (_prompt, request) => "z".repeat(request.max_tokens),
    );
    const one = body(outcomes[0]).choices[0];
    expect(one.text).toBe("abcz");
    expect(one.logprobs.tokens).toEqual(["a", "b", "c", "z"]);
    expect(one.logprobs.token_logprobs).toEqual([null, -1, -1, -1]);
    expect(one.logprobs.top_logprobs).toEqual([null, { b: -1 }, { c: -1 }, { z: -1 }]);
    expect(one.logprobs.text_offset).toEqual([0, 1, 2, 3]);
    expect(body(outcomes[0]).usage).toEqual({ prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 });
    const zero = body(outcomes[1]);
    expect(zero.choices.map((c: any) => [c.index, c.text, c.logprobs.token_logprobs])).toEqual([
      [0, "abc", [null, -1, -1]],
      [1, "d", [null]],
    ]);
    expect(zero.usage).toEqual({ prompt_tokens: 4, completion_tokens: 0, total_tokens: 4 });
  });

  it("refuses token ids outside the vocabulary or longer than the context, naming the list and the position", async () => {
    const model = new FakeModel({ info: { vocab_size: 50, context_length: 4 } });
    const handler = new Llama2ChatHandler();
    const outcomes = await runBatch(handler, makeContext({ model, handler }), [
      {
        url_path: COMPLETIONS,
        body: {
          prompt: [
            [1, 2],
            [3, 50],
          ],
        },
      },
      { url_path: COMPLETIONS, body: { prompt: [1, 2, 3, 4, 5] } },
      { url_path: COMPLETIONS, body: { prompt: [[1.5]] } },
    ]);
    expect(outcomes.map((o) => !o.ok && [o.status, o.field])).toEqual([
      [400, "prompt.1.1"],
      [400, "prompt"],
      [400, "prompt.0.0"],
    ]);
    expect(outcomes[0]).toMatchObject({
      message: "prompt.1.1: token id 50 is not in the model's vocabulary (0 to 49)",
      body: { error: { param: "prompt.1.1" } },
    });
    expect(outcomes[1]).toMatchObject({ message: "prompt: has 5 tokens, more than the model's context length of 4 tokens" });
    expect(model.calls).toHaveLength(0);
  });

  it("ends a stream without a usage chunk unless stream_options.include_usage", async () => {
    const { outcomes } = await run([{ url_path: COMPLETIONS, body: { prompt: "Hi", stream: true } }]);
    const tail = sseEvents((outcomes[0] as { body: string }).body);
    expect(tail).toHaveLength(2);
    expect(tail[1]).toBe("[DONE]");
  });
});

describe("v1/chat/completions", () => {
  it("renders messages with the handler's chat format (developer = system, text parts joined) and answers a chat completion", async () => {
    const messages = [
      { role: "developer", content: "Be brief." },
      {
        role: "user",
        content: [
          { type: "text", text: "Hi " },
          { type: "text", text: "there" },
        ],
      },
    ];
    const { outcomes, model } = await run(
      [{ url_path: CHAT, body: { messages, logprobs: true, top_logprobs: 1, temperature: 0 } }],
      () => "é!",
    );
    expect(model.prompts).toEqual(["<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi there [/INST]"]);
    expect(model.requests[0]).toMatchObject({ max_tokens: CHAT_DEFAULT_MAX_TOKENS, logprobs: 1 });
    const response = body(outcomes[0]);
    expect(response.id).toMatch(/^chatcmpl-/);
    expect(response).toMatchObject({ object: "chat.completion", model: "llama" });
    expect(response.choices[0]).toMatchObject({ index: 0, message: { role: "assistant", content: "é!" }, finish_reason: "stop" });
    expect(response.choices[0].logprobs.content[0]).toEqual({
      token: "é",
      logprob: -1,
      bytes: [195, 169],
      top_logprobs: [{ token: "é", logprob: -1, bytes: [195, 169] }],
    });
  });

  it("takes max_completion_tokens over max_tokens, and gives no logprobs unless asked", async () => {
    const { outcomes, model } = await run([
      { url_path: CHAT, body: { messages: [{ role: "user", content: "Hi" }], max_tokens: 9, max_completion_tokens: 5 } },
    ]);
    expect(model.requests[0]!.max_tokens).toBe(5);
    expect(body(outcomes[0]).choices[0].logprobs).toBeNull();
  });

  it("streams chat chunks: the role in each choice's first delta, then the finish, the usage and [DONE]", async () => {
    const { outcomes, streamed } = await run(
      [{ url_path: CHAT, body: { messages: [{ role: "user", content: "Hi" }], stream: true, stream_options: { include_usage: true } } }],
      () => "yo",
    );
    const [chunk] = sseEvents((streamed[0]!.body as { text: string }).text) as any[];
    expect(chunk).toMatchObject({
      object: "chat.completion.chunk",
      choices: [{ index: 0, delta: { role: "assistant", content: "yo" }, finish_reason: null }],
    });
    const tail = sseEvents((outcomes[0] as { body: string }).body) as any[];
    expect(tail[0].choices).toEqual([{ index: 0, delta: {}, finish_reason: "stop", logprobs: null }]);
    expect(tail[1]).toMatchObject({ object: "chat.completion.chunk", choices: [], usage: { completion_tokens: 2 } });
    expect(tail[2]).toBe("[DONE]");
  });
});

describe("OpenAI errors, models, and the model's own path", () => {
  it("refuses bad input with 400 in OpenAI's error shape, naming the field; batch mates are served", async () => {
    const cases: [IncomingRequest, string][] = [
      [{ url_path: COMPLETIONS, body: { prompt: [1, "two"] } }, "prompt"],
      [
        {
          url_path: COMPLETIONS,
          body: {
            prompt: [
              [1, 2],
              [3, 4096000],
            ],
          },
        },
        "prompt.1.1",
      ],
      [{ url_path: COMPLETIONS, body: {} }, "prompt"],
      [{ url_path: COMPLETIONS, body: { prompt: "a", max_tokens: -1 } }, "max_tokens"],
      [{ url_path: COMPLETIONS, body: { prompt: "a", suffix: "b" } }, "suffix"],
      [{ url_path: COMPLETIONS, body: { prompt: "a", presence_penalty: 0.5 } }, "presence_penalty"],
      [
        { url_path: COMPLETIONS, body: { prompt: "a", stream: true, stream_options: { include_usage: "yes" } } },
        "stream_options.include_usage",
      ],
      [{ url_path: COMPLETIONS, body: null, body_error: "body: is not valid JSON" }, "body"],
      [{ url_path: CHAT, body: { messages: [{ role: "tool", content: "x" }] } }, "messages.0.role"],
      [{ url_path: CHAT, body: { messages: [{ role: "user", content: [{ type: "image_url" }] }] } }, "messages.0.content"],
      [{ url_path: CHAT, body: { messages: [{ role: "user", content: "x" }], top_logprobs: 2 } }, "top_logprobs"],
      [{ url_path: CHAT, body: { messages: [{ role: "user", content: "x" }], logprobs: true, top_logprobs: 21 } }, "top_logprobs"],
      [{ url_path: CHAT, body: { messages: [{ role: "user", content: "x" }], temperature: 0, n: 2 } }, "n"],
      [{ url_path: CHAT, body: { messages: [{ role: "user", content: "x" }], tools: [{ type: "function" }] } }, "tools"],
    ];
    const { outcomes } = await run([...cases.map(([request]) => request), { url_path: COMPLETIONS, body: { prompt: "fine" } }]);
    cases.forEach(([, field], i) => {
      const outcome = outcomes[i] as Extract<RequestOutcome, { ok: false }>;
      expect(outcome, field).toMatchObject({ ok: false, status: 400, field });
      expect(outcome.body).toEqual({ error: { message: outcome.message, type: "invalid_request_error", param: field, code: null } });
      expect(outcome.message.startsWith(`${field}: `), outcome.message).toBe(true);
    });
    expect(outcomes.at(-1)!.ok).toBe(true);
  });

  it("answers an unknown v1 path with 404 in OpenAI's shape, other unknown paths in tsserve's", async () => {
    const { outcomes } = await run([
      { url_path: "v1/embeddings", body: {} },
      { url_path: "v9", body: {} },
    ]);
    expect(outcomes[0]).toMatchObject({
      ok: false,
      status: 404,
      field: "url_path",
      body: { error: { type: "not_found_error", param: "url_path", code: "not_found" } },
    });
    expect(outcomes[1]).toMatchObject({ ok: false, status: 404, field: "url_path" });
    expect(outcomes[1]).not.toHaveProperty("body");
  });

  it("lists the served model at v1/models, whatever the body", async () => {
    const { outcomes } = await run([{ url_path: "v1/models", body: null, body_error: "body: is not valid JSON" }]);
    expect(body(outcomes[0])).toEqual({
      object: "list",
      data: [{ id: "llama", object: "model", created: 0, owned_by: "tsserve", max_model_len: 4096 }],
    });
  });

  it("keeps the model's own path as it was: seed defaults, its prompt format, tsserve's body", async () => {
    const { outcomes, model } = await run([{ body: { prompt: "Hi" } }]);
    expect(model.prompts[0]).toContain("[INST]");
    expect(model.requests[0]).toMatchObject({ temperature: 0.8, top_p: 0, top_k: 50, seed: 0 });
    expect(Object.keys(body(outcomes[0])).sort()).toEqual(["choices", "created", "id", "model", "object", "raw_compute_time", "usage"]);
  });

  it("serves a batch mixing the model's own path and both OpenAI routes in one pass per route", async () => {
    const { outcomes, model } = await run([
      { body: { prompt: "a" } },
      { url_path: COMPLETIONS, body: { prompt: "b" } },
      { url_path: CHAT, body: { messages: [{ role: "user", content: "c" }] } },
      { url_path: COMPLETIONS, body: { prompt: "d" } },
    ]);
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(model.calls.map((call) => call.requests.length)).toEqual([1, 2, 1]);
  });
});

describe("a handler with its own request fields and routes", () => {
  it("passes the handler's extra request fields through the OpenAI routes, and keeps OpenAI's routes next to its own", async () => {
    const { z } = await import("zod");
    const { completionRequestSchema } = await import("../../../src/completions/request.ts");
    const Schema = completionRequestSchema({ tone: z.enum(["dry", "warm"]) });
    class Toned extends Llama2ChatHandler {
      override readonly requestSchema = Schema as never;
      override formatPrompt(request: any) {
        return `${request.tone}: ${request.messages?.[0]?.content ?? request.prompt}`;
      }
      override routes() {
        return [...super.routes(), { path: "v1/ping", handle: async (calls: readonly unknown[]) => calls.map(() => ({ pong: true })) }];
      }
    }
    const model = new FakeModel({ respond: () => "ok" });
    const handler = new Toned();
    const outcomes = await runBatch(handler, makeContext({ model, handler }), [
      { url_path: CHAT, body: { messages: [{ role: "user", content: "hi" }], tone: "warm" } },
      { url_path: CHAT, body: { messages: [{ role: "user", content: "hi" }], tone: "loud" } },
      { url_path: "v1/ping", body: null },
    ]);
    expect(model.prompts).toEqual(["warm: hi"]);
    expect(outcomes[0]!.ok).toBe(true);
    expect(outcomes[1]).toMatchObject({ ok: false, status: 400, field: "tone", body: { error: { param: "tone" } } });
    expect(outcomes[2]).toEqual({ ok: true, body: { pong: true } });
  });
});

// Routes across the real protocol: a `handle` whose requests carry url_path
// reaches a CompletionHandler's OpenAI routes through the Node runtime, its
// streamed chunks arrive as `stream/chunk` notifications with their content
// type, and the results pass the protocol's own schemas.
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { ChatTemplateHandler } from "../../../src/completions/prompt-format-handlers.ts";
import { Connection } from "../../../src/protocol/connection.ts";
import { HandleResult, PROTOCOL_VERSION, StreamChunkParams, type GenerateRequest } from "../../../src/protocol/messages.ts";
import { Generate, GenerationDelta, Handle, Initialize, StreamChunk } from "../../../src/protocol/methods.ts";
import { startRuntime } from "../../../src/runtime/bridge-endpoint.ts";
import { fakeOutcome } from "../../../src/testing/index.ts";

const modelInfo = {
  name_or_path: "fake",
  context_length: 64,
  vocab_size: 100,
  bos_token: null,
  eos_token: null,
  chat_template: "{% for m in messages %}{{ m.content }}{% endfor %}",
  device: "cpu",
};

function shim() {
  const toNode = new PassThrough();
  const fromNode = new PassThrough();
  startRuntime(ChatTemplateHandler, { input: toNode, output: fromNode, log: () => {} });
  const connection = new Connection(fromNode, toNode);
  const chunks: unknown[] = [];
  connection.onNotification(StreamChunk, (params) => chunks.push(params));
  connection.onRequest(Generate, async ({ call_id, requests }) => {
    requests.forEach((r: GenerateRequest, i: number) => {
      if (r.stream)
        connection.sendNotification(GenerationDelta, { call_id, request_index: i, sequence_index: 0, text: "hey", logprobs: null });
    });
    return { outcomes: requests.map((r: GenerateRequest) => fakeOutcome(r, "hey")) };
  });
  return { connection, chunks };
}

describe("routes over the protocol", () => {
  it("dispatches by url_path and streams server-sent events as text with their content type", async () => {
    const { connection, chunks } = shim();
    await connection.sendRequest(Initialize, {
      protocol_version: PROTOCOL_VERSION,
      model_name: "m",
      model_dir: "/tmp",
      gpu_id: null,
      batch_size: 3,
      model_config: { handler: { model_path: "/models/fake" } },
      model_info: modelInfo,
    });
    const result = await connection.sendRequest(Handle, {
      batch_id: 7,
      requests: [
        { body: { prompt: "a", max_tokens: 5 } },
        { body: { messages: [{ role: "user", content: "b" }], max_tokens: 5, stream: true }, url_path: "v1/chat/completions" },
        { body: {}, url_path: "v1/nope" },
      ],
    });
    expect(HandleResult.safeParse(result).success).toBe(true);
    const [own, chat, unknown] = result.responses;
    expect(own).toMatchObject({ ok: true, body: { object: "text_completion" } });
    expect(own).not.toHaveProperty("content_type");
    expect(chat).toMatchObject({ ok: true, content_type: "text/event-stream" });
    expect((chat as { body: string }).body.endsWith("data: [DONE]\n\n")).toBe(true);
    expect(unknown).toMatchObject({ ok: false, status: 404, body: { error: { param: "url_path" } } });
    await new Promise((r) => setTimeout(r, 10));
    expect(chunks).toHaveLength(1);
    expect(StreamChunkParams.safeParse(chunks[0]).success).toBe(true);
    expect(chunks[0]).toMatchObject({ batch_id: 7, request_index: 1, content_type: "text/event-stream" });
    const event = JSON.parse((chunks[0] as { body: string }).body.replace(/^data: /, ""));
    expect(event.choices[0].delta).toEqual({ role: "assistant", content: "hey" });
  });
});

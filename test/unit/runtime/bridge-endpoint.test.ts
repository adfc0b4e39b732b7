import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { Connection } from "../../../src/protocol/connection.ts";
import { ErrorCode } from "../../../src/protocol/errors.ts";
import { PROTOCOL_VERSION, type GenerateRequest } from "../../../src/protocol/messages.ts";
import { Generate, Handle, Initialize, Shutdown } from "../../../src/protocol/methods.ts";
import { startRuntime } from "../../../src/runtime/bridge-endpoint.ts";
import EchoHandler from "../../fixtures/handlers/echo-handler.ts";
import { initializeParams } from "./initialize-params.ts";

const initParams = (version = PROTOCOL_VERSION) => initializeParams("echo", 4, version);

/** The shim's side of the channel, with a model that appends "+" per token. */
function shim() {
  const toNode = new PassThrough();
  const fromNode = new PassThrough();
  const runtime = startRuntime(EchoHandler, { input: toNode, output: fromNode, log: () => {} });
  const connection = new Connection(fromNode, toNode);
  const prompts: string[] = [];
  connection.onRequest(Generate, ({ requests }) => ({
    outcomes: requests.map((r: GenerateRequest) => {
      prompts.push(r.prompt);
      const text = "+".repeat(r.max_tokens);
      return {
        ok: true as const,
        prompt: { tokens: [], token_ids: [], token_logprobs: [], top_logprobs: [], text_offset: [] },
        sequences: [
          {
            text,
            finish_reason: "length" as const,
            cumulative_logprob: 0,
            logprobs: { tokens: [], token_ids: [], token_logprobs: [], top_logprobs: [], text_offset: [] },
          },
        ],
        prompt_tokens: 1,
        compute_time: 0,
      };
    }),
  }));
  return { connection, runtime, prompts, toNode };
}

describe("runtime", () => {
  it("refuses a handshake with another protocol version, naming both", async () => {
    const { connection } = shim();
    const error = await connection.sendRequest(Initialize, initParams(PROTOCOL_VERSION + 1)).catch((e) => e);
    expect(error.code).toBe(ErrorCode.ProtocolVersionMismatch);
    expect(error.message).toContain(`speaks ${PROTOCOL_VERSION + 1}`);
  });

  it("refuses a model config whose handler section lacks model_path", async () => {
    const { connection } = shim();
    const error = await connection.sendRequest(Initialize, { ...initParams(), model_config: { handler: {} } }).catch((e) => e);
    expect(error.message).toMatch(/handler\.model_path/);
  });

  it("refuses handle before initialize", async () => {
    const { connection } = shim();
    const error = await connection.sendRequest(Handle, { batch_id: 1, requests: [] }).catch((e) => e);
    expect(error.code).toBe(ErrorCode.NotInitialized);
  });

  it("answers a batch, refusing only the invalid request with the field named", async () => {
    const { connection } = shim();
    await expect(connection.sendRequest(Initialize, initParams())).resolves.toEqual({
      protocol_version: PROTOCOL_VERSION,
      handler: "EchoHandler",
    });
    const { responses } = await connection.sendRequest(Handle, {
      batch_id: 1,
      requests: [
        { body: { prompt: "a", max_tokens: 2 } },
        { body: { prompt: 5 } },
        { body: null, body_error: "body: is not valid JSON" },
        { body: { prompt: "b" } },
      ],
    });
    expect(responses[0]).toEqual({ ok: true, body: { texts: ["++"] } });
    expect(responses[1]).toMatchObject({ ok: false, status: 400, field: "prompt" });
    expect(responses[2]).toMatchObject({ ok: false, status: 400, message: "body: is not valid JSON" });
    expect(responses[3]).toEqual({ ok: true, body: { texts: ["++++"] } });
  });

  it("lets a handler call the model several times inside one request", async () => {
    const { connection, prompts } = shim();
    await connection.sendRequest(Initialize, initParams());
    const { responses } = await connection.sendRequest(Handle, {
      batch_id: 1,
      requests: [{ body: { prompt: "q:", max_tokens: 1, steps: 3 } }],
    });
    expect(responses[0]).toEqual({ ok: true, body: { texts: ["+", "+", "+"] } });
    expect(prompts).toEqual(["q:", "q:+", "q:++"]);
  });

  it.each(["throw-preprocess", "throw-inference", "throw-postprocess"])(
    "fails only the request whose handler stage throws (%s)",
    async (fault) => {
      const { connection } = shim();
      await connection.sendRequest(Initialize, initParams());
      const { responses } = await connection.sendRequest(Handle, {
        batch_id: 1,
        requests: [{ body: { prompt: "x", fault } }, { body: { prompt: "y", max_tokens: 1 } }],
      });
      expect(responses[0]).toMatchObject({ ok: false, status: 500, message: expect.stringContaining("exploded") });
      expect(responses[1]).toEqual({ ok: true, body: { texts: ["+"] } });
    },
  );

  it("closes with exit code 0 after shutdown, 1 when stdin ends first", async () => {
    const a = shim();
    await a.connection.sendRequest(Shutdown, {});
    a.toNode.end();
    await expect(a.runtime.closed).resolves.toBe(0);
    const b = shim();
    b.toNode.end();
    await expect(b.runtime.closed).resolves.toBe(1);
  });
});

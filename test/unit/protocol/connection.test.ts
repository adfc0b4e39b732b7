import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { Connection } from "../../../src/protocol/connection.ts";
import { ConnectionError, ErrorCode, RpcError } from "../../../src/protocol/errors.ts";
import { Cancelled, Detokenize, Tokenize } from "../../../src/protocol/methods.ts";

function pair() {
  const aToB = new PassThrough();
  const bToA = new PassThrough();
  return { a: new Connection(bToA, aToB), b: new Connection(aToB, bToA), aToB, bToA };
}

describe("Connection", () => {
  it("answers a request with the result its handler returns", async () => {
    const { a, b } = pair();
    b.onRequest(Tokenize, ({ texts }) => ({ ids: texts.map((t) => [...t].map((c) => c.charCodeAt(0))) }));
    await expect(a.sendRequest(Tokenize, { texts: ["hi"], add_special_tokens: false })).resolves.toEqual({ ids: [[104, 105]] });
  });

  it("serves the peer's requests while its own request is pending", async () => {
    const { a, b } = pair();
    // b answers a's detokenize only after asking a to tokenize.
    a.onRequest(Tokenize, () => ({ ids: [[7]] }));
    b.onRequest(Detokenize, async () => {
      const { ids } = await b.sendRequest(Tokenize, { texts: ["x"], add_special_tokens: true });
      return { texts: [`got ${ids[0]![0]}`] };
    });
    await expect(a.sendRequest(Detokenize, { ids: [[1]], skip_special_tokens: true })).resolves.toEqual({ texts: ["got 7"] });
  });

  it("rejects with MethodNotFound for a method nobody serves", async () => {
    const { a } = pair();
    const error = await a.sendRequest(Tokenize, { texts: [], add_special_tokens: true }).catch((e) => e);
    expect(error).toBeInstanceOf(RpcError);
    expect(error.code).toBe(ErrorCode.MethodNotFound);
  });

  it("rejects with InvalidParams when the params do not match the schema", async () => {
    const { a, b } = pair();
    b.onRequest(Tokenize, () => ({ ids: [] }));
    const error = await a.sendRequest(Tokenize, { texts: "nope" } as never).catch((e) => e);
    expect(error.code).toBe(ErrorCode.InvalidParams);
  });

  it("turns a handler's exception into an error answer and keeps serving", async () => {
    const { a, b } = pair();
    let calls = 0;
    b.onRequest(Tokenize, () => {
      if (calls++ === 0) throw new Error("boom");
      return { ids: [] };
    });
    await expect(a.sendRequest(Tokenize, { texts: [], add_special_tokens: true })).rejects.toThrow("boom");
    await expect(a.sendRequest(Tokenize, { texts: [], add_special_tokens: true })).resolves.toEqual({ ids: [] });
  });

  const lonely = () => {
    const bToA = new PassThrough();
    return { a: new Connection(bToA, new PassThrough()), bToA };
  };

  it("rejects every pending request when the channel closes", async () => {
    const { a, bToA } = lonely();
    const pending = a.sendRequest(Tokenize, { texts: [], add_special_tokens: true });
    bToA.end();
    const error = await pending.catch((e) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error.reason).toBe("closed");
    await expect(a.sendRequest(Tokenize, { texts: [], add_special_tokens: true })).rejects.toThrow(/closed/);
  });

  it("times out a request that gets no answer", async () => {
    const { a } = lonely();
    await expect(a.sendRequest(Tokenize, { texts: [], add_special_tokens: true }, { timeoutMs: 20 })).rejects.toThrow(
      /no answer within 20 ms/,
    );
  });

  it("reports noise lines and still reads the messages after them", async () => {
    const aToB = new PassThrough();
    const bToA = new PassThrough();
    const noise: string[] = [];
    const a = new Connection(bToA, aToB, { onNoise: (d) => noise.push(d) });
    const pending = a.sendRequest(Tokenize, { texts: [], add_special_tokens: true });
    bToA.write("some library printed this\n");
    bToA.write(`${JSON.stringify({ jsonrpc: "2.0", id: 1, result: { ids: [[1]] } })}\n`);
    await expect(pending).resolves.toEqual({ ids: [[1]] });
    expect(noise[0]).toContain("some library printed this");
  });

  describe("cancellation (notifications/cancelled, as the MCP SDK does it)", () => {
    it("an aborted signal rejects the caller at once and tells the peer, whose handler sees its own signal abort", async () => {
      const { a, b } = pair();
      const seen: string[] = [];
      b.onRequest(
        Tokenize,
        (_params, { signal }) =>
          new Promise((resolve) => {
            signal.addEventListener("abort", () => {
              seen.push(String((signal.reason as Error).message));
              resolve({ ids: [] });
            });
          }),
      );
      const controller = new AbortController();
      const pending = a.sendRequest(Tokenize, { texts: ["x"], add_special_tokens: true }, { signal: controller.signal });
      await new Promise((r) => setTimeout(r, 10));
      controller.abort(new Error("the request timed out"));
      await expect(pending).rejects.toMatchObject({
        name: "ConnectionError",
        reason: "cancelled",
        message: "tokenize cancelled: the request timed out",
      });
      await new Promise((r) => setTimeout(r, 10));
      expect(seen).toEqual(["the request timed out"]);
    });

    it("a signal aborted before the call sends nothing", async () => {
      const { a, b, aToB } = pair();
      let served = 0;
      b.onRequest(Tokenize, () => {
        served += 1;
        return { ids: [] };
      });
      const written: string[] = [];
      aToB.on("data", (chunk: Buffer) => written.push(chunk.toString()));
      await expect(a.sendRequest(Tokenize, { texts: [], add_special_tokens: true }, { signal: AbortSignal.abort("over") })).rejects.toThrow(
        "tokenize not sent: over",
      );
      await new Promise((r) => setTimeout(r, 10));
      expect(served).toBe(0);
      expect(written).toEqual([]);
    });

    it("a cancelled request the handler finishes anyway is answered with RequestCancelled", async () => {
      const aToB = new PassThrough();
      const bToA = new PassThrough();
      const b = new Connection(aToB, bToA);
      const answers: unknown[] = [];
      bToA.on("data", (chunk: Buffer) =>
        answers.push(
          ...chunk
            .toString()
            .trim()
            .split("\n")
            .map((line) => JSON.parse(line)),
        ),
      );
      let release!: () => void;
      b.onRequest(Tokenize, () => new Promise((resolve) => (release = () => resolve({ ids: [] }))));
      aToB.write(`${JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tokenize", params: { texts: [], add_special_tokens: true } })}\n`);
      aToB.write(
        `${JSON.stringify({ jsonrpc: "2.0", method: Cancelled.method, params: { request_id: 7, reason: "client went away" } })}\n`,
      );
      await new Promise((r) => setTimeout(r, 10));
      release();
      await new Promise((r) => setTimeout(r, 10));
      expect(answers).toEqual([
        { jsonrpc: "2.0", id: 7, error: { code: ErrorCode.RequestCancelled, message: "tokenize was cancelled: client went away" } },
      ]);
    });

    it("closing the connection aborts the requests being served", async () => {
      const { a, b, aToB } = pair();
      let signal: AbortSignal | undefined;
      b.onRequest(Tokenize, (_params, extra) => {
        signal = extra.signal;
        return new Promise(() => {});
      });
      void a.sendRequest(Tokenize, { texts: [], add_special_tokens: true }).catch(() => {});
      await new Promise((r) => setTimeout(r, 10));
      aToB.end();
      await new Promise((r) => setTimeout(r, 10));
      expect(signal?.aborted).toBe(true);
    });
  });
});

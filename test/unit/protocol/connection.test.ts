import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { Connection } from "../../../src/protocol/connection.ts";
import { ConnectionError, ErrorCode, RpcError } from "../../../src/protocol/errors.ts";
import { Detokenize, Tokenize } from "../../../src/protocol/methods.ts";

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
    await expect(a.sendRequest(Tokenize, { texts: [], add_special_tokens: true }, { timeoutMs: 20 })).rejects.toThrow(/no answer within 20 ms/);
  });

  it("reports noise lines and still reads the messages after them", async () => {
    const aToB = new PassThrough();
    const bToA = new PassThrough();
    const noise: string[] = [];
    const a = new Connection(bToA, aToB, { onNoise: (d) => noise.push(d) });
    const pending = a.sendRequest(Tokenize, { texts: [], add_special_tokens: true });
    bToA.write("some library printed this\n");
    bToA.write(JSON.stringify({ jsonrpc: "2.0", id: 1, result: { ids: [[1]] } }) + "\n");
    await expect(pending).resolves.toEqual({ ids: [[1]] });
    expect(noise[0]).toContain("some library printed this");
  });
});

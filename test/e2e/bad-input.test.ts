// Bad input on a real TorchServe 0.12 with the tiny model and the Llama-2 chat
// handler (issue 7): every refusal is a 400 whose JSON body's error.message
// names the field, the worker and its Node child survive all of them, and a
// body over max_request_size is refused by TorchServe itself with 413.
// A body the shim cannot carry to Node (issue 28: an integer beyond 64 bits, a
// lone surrogate, deep nesting) is a 400 of its own, and an answer over
// max_response_size is a 413 from the shim, not a worker the frontend drops.
//
// The suite has its own working folder (.work/e2e-bad-input) and ports
// (TSSERVE_E2E_PORT_BASE, default 28080), so it never meets another TorchServe.
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { createArchive } from "../../src/archive/archive.ts";
import type { TorchServeClient } from "../../src/client/http.ts";
import { stillRunning, type ProcInfo } from "../../src/client/procs.ts";
import { registerWatched } from "../../src/client/model-registration.ts";
import { TINY_HANDLER, nodeChildOf, tinyConfig, waitFor } from "./helpers.ts";
import { withServer } from "./servers.ts";

const MODEL = "tiny-bad-input";
const MAX_REQUEST_SIZE = 65_536;
const MAX_RESPONSE_SIZE = 65_536;
const CONTEXT = 512; // .cache/tiny-llama's max_position_embeddings

const srv = withServer("bad-input", { properties: [`max_request_size=${MAX_REQUEST_SIZE}`, `max_response_size=${MAX_RESPONSE_SIZE}`] });
let client: TorchServeClient;
let workerPid: number;
let node: ProcInfo;

const good = { prompt: "Hello", max_tokens: 2, temperature: 0 };

beforeAll(async () => {
  const configFile = tinyConfig(path.join(srv.scratch, `${MODEL}.yaml`));
  await createArchive({ modelName: MODEL, version: "1.0", handler: TINY_HANDLER, configFile, exportPath: srv.modelStore });
  client = srv.client;
  await registerWatched(client, { url: `${MODEL}.mar`, modelName: MODEL, initialWorkers: 1 }, srv.paths);
  const [description] = await client.describeModel(MODEL);
  workerPid = description!.workers[0]!.pid!;
  node = await waitFor("the Node child", () => nodeChildOf(workerPid), 10_000);
}, 300_000);

const messages = (...roles: string[]) => roles.map((role, i) => ({ role, content: `turn ${i}` }));
const longPrompt = "word ".repeat(CONTEXT + 100);

/** [what is wrong, the body (a string is sent as is), the field its message must name]. */
const CASES: [string, unknown, string][] = [
  ["the body is not JSON", '{"prompt": "Hello",', "body"],
  ["temperature is NaN", '{"prompt": "Hello", "temperature": NaN}', "temperature"],
  ["the body is a list, not an object", [good], "body"],
  ["the body is a string, not an object", '"Hello"', "body"],
  ["the body is null", "null", "body"],
  ["neither prompt nor messages", { max_tokens: 2 }, "prompt"],
  ["both prompt and messages", { prompt: "Hello", messages: messages("user") }, "messages"],
  ["prompt is not a string", { prompt: 42 }, "prompt"],
  ["prompt is an object", { prompt: { text: "Hello" } }, "prompt"],
  ["messages is empty", { messages: [] }, "messages"],
  ["messages is not a list", { messages: "Hello" }, "messages"],
  ["a message has an unknown role", { messages: [{ role: "wizard", content: "hi" }] }, "messages.0.role"],
  ["roles do not alternate", { messages: messages("user", "user") }, "messages"],
  ["a message's content is not a string", { messages: [{ role: "user", content: ["hi"] }] }, "messages.0.content"],
  ["max_tokens is negative", { ...good, max_tokens: -1 }, "max_tokens"],
  ["max_tokens is fractional", { ...good, max_tokens: 2.5 }, "max_tokens"],
  ["max_tokens is a string", { ...good, max_tokens: "2" }, "max_tokens"],
  ["max_tokens goes beyond the model's context", { ...good, max_tokens: CONTEXT * 4 }, "max_tokens"],
  ["temperature is negative", { ...good, temperature: -0.1 }, "temperature"],
  ["temperature is above 2", { ...good, temperature: 2.5 }, "temperature"],
  ["temperature is not finite (1e999)", '{"prompt": "Hello", "temperature": 1e999}', "temperature"],
  ["temperature is a string", { ...good, temperature: "hot" }, "temperature"],
  ["top_p is negative", { ...good, top_p: -0.5 }, "top_p"],
  ["top_p is above 1", { ...good, top_p: 1.5 }, "top_p"],
  ["top_k is negative", { ...good, top_k: -1 }, "top_k"],
  ["top_k is fractional", { ...good, top_k: 2.5 }, "top_k"],
  ["repetition_penalty is 0", { ...good, repetition_penalty: 0 }, "repetition_penalty"],
  ["repetition_penalty is negative", { ...good, repetition_penalty: -1 }, "repetition_penalty"],
  ["logprobs is negative", { ...good, logprobs: -1 }, "logprobs"],
  ["logprobs is above 20", { ...good, logprobs: 21 }, "logprobs"],
  ["n is 0", { ...good, temperature: 0.7, n: 0 }, "n"],
  ["best_of is below n", { ...good, temperature: 0.7, n: 3, best_of: 2 }, "best_of"],
  ["n > 1 with temperature 0", { ...good, temperature: 0, n: 2 }, "n"],
  ["stop is a number", { ...good, stop: 7 }, "stop"],
  ["stop holds a number", { ...good, stop: ["ok", 7] }, "stop"],
  ["stop holds an empty string", { ...good, stop: [""] }, "stop"],
  ["stop holds more than 16 sequences", { ...good, stop: Array.from({ length: 17 }, (_, i) => `s${i}`) }, "stop"],
  ["a stop sequence is over 256 characters", { ...good, stop: ["x".repeat(257)] }, "stop"],
  ["seed is fractional", { ...good, seed: 1.5 }, "seed"],
  ["seed is a string", { ...good, seed: "0" }, "seed"],
  ["echo is not a boolean", { ...good, echo: "yes" }, "echo"],
  ["the prompt is longer than the model's context", { ...good, prompt: longPrompt }, "prompt"],
  [
    "an unknown field holds an integer of 2^64",
    '{"prompt": "Hello", "max_tokens": 2, "x": 18446744073709551616}',
    "x: the integer 18446744073709551616 is out of range",
  ],
  ["the prompt holds a lone surrogate", '{"prompt": "a\\ud800b", "max_tokens": 2}', "prompt: contains a lone surrogate"],
  [
    "a field is nested 300 deep",
    `{"prompt": "Hello", "max_tokens": 2, "x": ${"[".repeat(300)}${"]".repeat(300)}}`,
    "x: nested deeper than",
  ],
];

describe("bad input is refused with 400 naming the field", () => {
  it.each(CASES)("%s", async (_what, body, field) => {
    const result = await client.predict(MODEL, typeof body === "string" ? body : JSON.stringify(body));
    expect(result.status).toBe(400);
    expect(result.contentType).toContain("application/json");
    const json = JSON.parse(result.body) as { error: { code: number; message: string } };
    expect(json.error.code).toBe(400);
    expect(json.error.message).toContain(field);
  });

  it('a body of valid JSON that is not an object ("hi") is not called invalid JSON', async () => {
    const result = await client.predict(MODEL, '"hi"');
    expect(result.status).toBe(400);
    const message = JSON.parse(result.body).error.message as string;
    expect(message).toMatch(/^body: /);
    expect(message).not.toContain("not valid JSON");
  });

  it("a body that is not UTF-8 is refused naming the body", async () => {
    const result = await client.predict(MODEL, new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]));
    expect(result.status).toBe(400);
    expect(JSON.parse(result.body).error.message).toMatch(/^body: is not valid UTF-8/);
  });

  it("refuses each bad request of a batch alone: a good one sent with them is answered 200", async () => {
    const [bad, ok] = await Promise.all([
      client.predict(MODEL, JSON.stringify({ ...good, top_k: -1 })),
      client.predict(MODEL, JSON.stringify(good)),
    ]);
    expect(bad.status).toBe(400);
    expect(ok.status).toBe(200);
  }, 60_000);

  it(`a body over max_request_size (${MAX_REQUEST_SIZE} bytes) gets 413 from TorchServe itself`, async () => {
    const result = await client.predict(MODEL, JSON.stringify({ ...good, prompt: "x".repeat(MAX_REQUEST_SIZE * 2) }));
    expect(result.status).toBe(413);
  });

  it(`3 answers over max_response_size (${MAX_RESPONSE_SIZE} bytes) in a row are each a 413 naming size and limit`, async () => {
    const big = { prompt: "word ".repeat(400), max_tokens: 1, echo: true, logprobs: 20, temperature: 0 };
    for (let i = 0; i < 3; i++) {
      const result = await client.predict(MODEL, JSON.stringify(big));
      expect(result.status).toBe(413);
      expect(JSON.parse(result.body).error.message).toMatch(
        /^the response is [\d,]+ bytes, over TorchServe's max_response_size of 65,536 bytes/,
      );
    }
    expect(await client.ping()).toEqual({ status: "Healthy" });
  }, 120_000);

  it("after all of them the same worker and Node child answer a good request with 200", async () => {
    const result = await client.predict(MODEL, JSON.stringify(good));
    expect(result.status).toBe(200);
    expect(JSON.parse(result.body).choices[0].text).toEqual(expect.any(String));
    const [description] = await client.describeModel(MODEL);
    expect(description!.workers.map((w) => w.pid)).toEqual([workerPid]);
    expect(stillRunning(node)).toBe(true);
  }, 60_000);
});

// Continuous batching on a real TorchServe 0.12 (issue 13): a model config with
// `asyncCommunication: true` hands each request to the shim as it arrives, and the
// engine's iteration-level scheduler joins it to the running decode batch. A short
// request sent while a long one is decoding must finish first (with one-at-a-time
// or static batching it would wait for the long one), with the text it gets alone;
// a seeded sampled request stays independent of its batch mates; streaming and the
// two-stage AgentInstruct handler keep working in this mode.
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createArchive } from "../../src/archive/archive.ts";
import type { TorchServeClient } from "../../src/client/http.ts";
import { connect, registerWatched, runningServer, startServer, stopServer } from "../../src/client/server.ts";
import { ROOT, TINY_HANDLER, isolatedServer, leftovers, tinyConfig, type IsolatedServer } from "./helpers.ts";

const MODEL = "cb";
const AGENT = "cb-agentinstruct";
const AGENT_HANDLER = path.join(ROOT, "handlers", "llama-2-7b-chat-agentinstruct.ts");

let srv: IsolatedServer;
let client: TorchServeClient;

interface Completion {
  choices: { text: string; finish_reason: string }[];
  usage: { completion_tokens: number };
}

async function complete(model: string, body: Record<string, unknown>): Promise<Completion> {
  const result = await client.predict(model, JSON.stringify(body));
  expect(result.status, result.body).toBe(200);
  return JSON.parse(result.body) as Completion;
}

async function archive(modelName: string, handler: string, settings: Record<string, string | number>): Promise<void> {
  const configFile = tinyConfig(path.join(srv.scratch, `${modelName}.yaml`), settings);
  await createArchive({ modelName, version: "1.0", handler, configFile, exportPath: srv.modelStore, force: true });
}

beforeAll(async () => {
  srv = isolatedServer("continuous-batching");
  if (runningServer(srv.paths)) await stopServer({ paths: srv.paths });
  await archive(MODEL, TINY_HANDLER, { asyncCommunication: "true", batchSize: 1, responseTimeout: 60 });
  await archive(AGENT, AGENT_HANDLER, { asyncCommunication: "true", batchSize: 1, responseTimeout: 60, "handler.explanation_max_tokens": 16 });
  await startServer({ paths: srv.paths, tsConfig: srv.tsConfig, modelStore: srv.modelStore });
  client = connect(srv.paths);
  await registerWatched(client, { url: `${MODEL}.mar`, modelName: MODEL, initialWorkers: 1 }, srv.paths);
  await registerWatched(client, { url: `${AGENT}.mar`, modelName: AGENT, initialWorkers: 1 }, srv.paths);
}, 300_000);

afterAll(async () => {
  if (srv && runningServer(srv.paths)) await stopServer({ paths: srv.paths });
  if (srv) expect(leftovers(srv.paths)).toEqual([]);
}, 120_000);

describe("continuous batching (asyncCommunication: true)", () => {
  it("a short request sent while a long one is decoding finishes first, with the text it gets alone", async () => {
    const short = { prompt: "Hi", max_tokens: 4, temperature: 0 };
    const alone = await complete(MODEL, short);
    const order: string[] = [];
    let firstChunk!: () => void;
    const decoding = new Promise<void>((resolve) => (firstChunk = resolve));
    let streamed = "";
    const long = client
      .predictStream(MODEL, JSON.stringify({ prompt: "Tell me a long story", max_tokens: 300, temperature: 0, stream: true }), (chunk) => {
        streamed += chunk;
        firstChunk();
      })
      .then((result) => (order.push("long"), result));
    await decoding; // the long request has produced text: it is in the decode loop
    const joined = await complete(MODEL, short);
    order.push("short");
    const longResult = await long;
    expect(order).toEqual(["short", "long"]);
    expect(joined.choices[0]!.text).toBe(alone.choices[0]!.text);
    expect(longResult.status).toBe(200);
    const lines = streamed.trim().split("\n").map((line) => JSON.parse(line) as { choices: { finish_reason: string | null }[] });
    expect(lines.length).toBeGreaterThan(2);
    expect(lines.at(-1)!.choices[0]!.finish_reason).toMatch(/^(length|stop)$/);
  }, 180_000);

  it("a seeded sampled request gives the same text alone and among batch mates that join and leave", async () => {
    const seeded = { prompt: "Once upon a time", max_tokens: 24, temperature: 0.9, top_k: 50, top_p: 1, seed: 1234 };
    const alone = (await complete(MODEL, seeded)).choices[0]!.text;
    const mates = [5, 40, 12].map((n, k) => ({ prompt: `Mate ${k} says`, max_tokens: n, temperature: 1, top_p: 1, seed: k }));
    const answers = await Promise.all([complete(MODEL, mates[1]!), complete(MODEL, seeded), complete(MODEL, mates[0]!), complete(MODEL, mates[2]!)]);
    expect(answers[1]!.choices[0]!.text).toBe(alone);
    expect(answers.map((a) => a.usage.completion_tokens)).toEqual([40, 24, 5, 12].map((n, i) => Math.min(n, answers[i]!.usage.completion_tokens)));
  }, 180_000);

  it("the two-stage AgentInstruct handler answers under continuous batching, concurrently", async () => {
    const fields = { instructions: "1. Read the question.\n2. Add the two numbers.\n3. Give the sum.", input_prefix: "Question: ", output_prefix: "Answer: " };
    const body = { ...fields, prompt: "Question: What is 2 + 3?\nAnswer:", max_tokens: 8, temperature: 0 };
    const [a, b] = await Promise.all([complete(AGENT, body), complete(AGENT, { ...body, prompt: "Question: What is 4 + 4?\nAnswer:" })]);
    const again = await complete(AGENT, body);
    expect(a.choices[0]!.text).toBe(again.choices[0]!.text);
    expect(b.choices[0]!.text).toEqual(expect.any(String));
  }, 180_000);
});

// One writer per worker socket (issue 38): under asyncCommunication TorchServe's
// worker writes answers from its own thread while the shim writes stream chunks
// from the event loop's, both to the one socket to the frontend. A large answer
// beside live streams once interleaved the two, the frontend read text as a frame
// length (TooLongFrameException) and dropped the worker with all in flight.
// Reproduced here on both engines: streams of hundreds of tokens and, beside them,
// tokenize calls whose answers are megabytes, all at once. Every stream and
// answer must complete, the worker must be the same process, and the frontend log
// must have no frame error. One round suffices: with the shim's lock taken out
// (socket_writer.install a no-op), the first round failed on both engines with
// TooLongFrameException (2026-12-07).
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { readKeyFile } from "../../src/client/keys.ts";
import { tinyConfig, TINY_HANDLER } from "./helpers.ts";
import { sharedModel, sharedServer, SMOLLM2_VLLM, smollm2OnVllm, type Engine, type RunningServer } from "./servers.ts";

const STREAMS = 6;
const ANSWERS = 12;
/** About 100,000 tokens on either tokenizer: an answer of 1-2 MB with the token texts. */
const TEXT = "word ".repeat(100_000);
/** A request the frontend dropped with its worker is never answered: give up on it after this long. */
const CLIENT_TIMEOUT_MS = 120_000;

/** Where each engine's model is served and how long its streams are. */
interface Served {
  server: RunningServer;
  model: string;
  streamTokens: number;
}
const served: Partial<Record<Engine, Served>> = {};

beforeAll(async () => {
  const transformers = await sharedServer("transformers");
  const model = "socket-tiny";
  await sharedModel(transformers, {
    name: model,
    handler: TINY_HANDLER,
    configFile: tinyConfig(path.join(transformers.scratch, `${model}.yaml`)),
  });
  served.transformers = { server: transformers, model, streamTokens: 450 };
  served.vllm = { server: await smollm2OnVllm(), model: SMOLLM2_VLLM, streamTokens: 120 };
}, 600_000);

async function post(target: Served, route: string, body: unknown): Promise<Response> {
  const key = readKeyFile(target.server.paths.keyFile)!.inference.key;
  const url = `http://127.0.0.1:${target.server.ports.inference}/predictions/${target.model}${route}`;
  return fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${key}` },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
  });
}

/** A stream to its end: its chunks' texts joined, and the finish reason of the last. */
async function stream(target: Served, index: number): Promise<{ status: number; text: string; finish: string | undefined }> {
  const body = { prompt: `Story number ${index}:`, max_tokens: target.streamTokens, temperature: 0.8, seed: index, stream: true };
  const response = await post(target, "", body).catch((error: Error) => ({ status: -1, text: async () => `${error.name}` }));
  if (response.status !== 200) return { status: response.status, text: await response.text(), finish: undefined };
  let all: string;
  try {
    all = await response.text();
  } catch (error) {
    return { status: -2, text: (error as Error).name, finish: undefined }; // its body never ended
  }
  const lines = all
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line));
  const choices = lines.map((line) => line.choices?.[0]).filter(Boolean);
  return { status: response.status, text: choices.map((c) => c.text ?? "").join(""), finish: choices.at(-1)?.finish_reason };
}

async function tokenize(target: Served): Promise<{ status: number; count: number; bytes: number }> {
  const response = await post(target, "/1.0/tokenize", { prompt: TEXT, return_token_strs: true }).catch(() => undefined);
  if (response === undefined) return { status: -1, count: -1, bytes: 0 }; // never answered
  const text = await response.text();
  return { status: response.status, count: response.status === 200 ? JSON.parse(text).count : -1, bytes: text.length };
}

async function workerPid(target: Served): Promise<number> {
  return (await target.server.client.describeModel(target.model))[0]!.workers[0]!.pid!;
}

const frameErrors = (target: Served) =>
  fs
    .readFileSync(path.join(target.server.paths.logs, "ts_log.log"), "utf8")
    .split("\n")
    .filter((line) => line.includes("TooLongFrameException"));

describe.each(["transformers", "vllm"] as const)("the worker socket on the %s engine", (engine) => {
  it(`${STREAMS} streams beside ${ANSWERS} megabyte answers: all complete, same worker, no frame error`, async () => {
    const target = served[engine]!;
    const pid = await workerPid(target);
    const errorsBefore = frameErrors(target).length;
    const streams = Promise.all(Array.from({ length: STREAMS }, (_, i) => stream(target, i)));
    const answers = Promise.all(Array.from({ length: ANSWERS }, () => tokenize(target)));
    const [s, a] = await Promise.all([streams, answers]);
    // A frame error is the cause when requests went unanswered: said first.
    expect(frameErrors(target).slice(errorsBefore)).toEqual([]);
    for (const one of s) {
      expect(one.status).toBe(200);
      expect(["length", "stop"], "a stream that ended without its last chunk").toContain(one.finish);
    }
    for (const one of a) {
      expect(one.status).toBe(200);
      expect(one.count).toBe(a[0]!.count);
      expect(one.bytes).toBeGreaterThan(1_000_000);
    }
    expect(await workerPid(target)).toBe(pid);
    expect(frameErrors(target).slice(errorsBefore)).toEqual([]);
  }, 600_000);
});

// Continuous batching on a real TorchServe 0.12 (issue 13): a model config with
// `asyncCommunication: true` hands each request to the shim as it arrives, and the
// engine's iteration-level scheduler joins it to the running decode batch. A short
// request sent while a long one is decoding must finish first (with one-at-a-time
// or static batching it would wait for the long one), with the text it gets alone;
// a seeded sampled request stays independent of its batch mates; streaming and the
// two-stage AgentInstruct handler keep working in this mode.
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { createArchive } from "../../src/archive/archive.ts";
import type { TorchServeClient } from "../../src/client/http.ts";
import { registerWatched } from "../../src/client/model-registration.ts";
import { jvmLiveHeap } from "../../scripts/soak-lib.ts";
import { OOM_MARKER, ROOT, TINY_HANDLER, cli, faultShimPackage, leftoverProcs, nodeChildOf, tinyConfig, waitFor } from "./helpers.ts";
import { withServer } from "./servers.ts";

const MODEL = "cb";
const AGENT = "cb-agentinstruct";
const AGENT_HANDLER = path.join(ROOT, "handlers", "llama-2-7b-chat-agentinstruct.ts");
const FAULTS = "cb-faults";
const FAULT_HANDLER = path.join(ROOT, "test", "fixtures", "handlers", "fault-handler.ts");
// Room for a Node child restarted on a busy CPU (npm test runs pytest and two e2e lanes at once).
const HANDLE_TIMEOUT_S = 8;

const srv = withServer("continuous-batching");
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

/** The text of a streamed completion: its chunks' texts put together. */
function streamedText(body: string): string {
  return body
    .trim()
    .split("\n")
    .map((line) => (JSON.parse(line) as Completion).choices[0]!.text)
    .join("");
}

/**
 * How many request jobs the TorchServe frontend still holds: live instances of its RestJob class
 * in a heap histogram (jcmd GC.class_histogram, which runs a full GC first). Under
 * asyncCommunication every job the worker took stays in AsyncBatchAggregator's jobs_in_backend
 * until a reply retires it, so this count is that table's size plus the requests in progress.
 */
function frontendJobs(): number {
  const frontend = leftoverProcs(srv.paths).find((p) => p.cmdline.includes("org.pytorch.serve.ModelServer"));
  if (!frontend) throw new Error("no TorchServe frontend process found");
  return jvmLiveHeap(frontend.pid, "org.pytorch.serve.job.RestJob").instances;
}

async function archive(modelName: string, handler: string, settings: Record<string, string | number>, shimPackage?: string): Promise<void> {
  const configFile = tinyConfig(path.join(srv.scratch, `${modelName}.yaml`), settings);
  await createArchive(
    { modelName, version: "1.0", handler, configFile, exportPath: srv.modelStore, force: true },
    shimPackage ? { shimPackage } : {},
  );
}

async function ask(body: Record<string, unknown>): Promise<{ status: number; body: { text?: string; error?: { message: string } } }> {
  const result = await client.predict(FAULTS, JSON.stringify({ prompt: "Hello", max_tokens: 2, ...body }));
  return { status: result.status, body: JSON.parse(result.body) };
}

async function faultsChild(): Promise<number> {
  const pid = (await client.describeModel(FAULTS))[0]!.workers[0]!.pid!;
  return waitFor("the fault model's Node child", () => nodeChildOf(pid)?.pid, 10_000);
}

beforeAll(async () => {
  await archive(MODEL, TINY_HANDLER, { asyncCommunication: "true", batchSize: 1, responseTimeout: 60 });
  await archive(AGENT, AGENT_HANDLER, {
    asyncCommunication: "true",
    batchSize: 1,
    responseTimeout: 60,
    "handler.explanation_max_tokens": 16,
  });
  await archive(
    FAULTS,
    FAULT_HANDLER,
    { asyncCommunication: "true", batchSize: 1, responseTimeout: 60, "handler.handle_timeout_s": HANDLE_TIMEOUT_S },
    faultShimPackage(srv.scratch),
  );
  client = srv.client;
  await registerWatched(client, { url: `${MODEL}.mar`, modelName: MODEL, initialWorkers: 1 }, srv.paths);
  await registerWatched(client, { url: `${AGENT}.mar`, modelName: AGENT, initialWorkers: 1 }, srv.paths);
  await registerWatched(client, { url: `${FAULTS}.mar`, modelName: FAULTS, initialWorkers: 1 }, srv.paths);
}, 300_000);

describe("continuous batching (asyncCommunication: true)", () => {
  it("a short request sent while a long one is decoding finishes first, with the text it gets alone", async () => {
    const short = { prompt: "Hi", max_tokens: 4, temperature: 0 };
    const alone = await complete(MODEL, short);
    // The long one decodes 300 tokens in about a second: on a loaded machine its first chunk can reach
    // this client after it has ended, and then the short one was not sent "while it decodes". Such a
    // round proves nothing either way and is run again; a short one sent in time must finish first.
    for (let round = 1; ; round++) {
      const order: string[] = [];
      let firstChunk!: () => void;
      const decoding = new Promise<void>((resolve) => (firstChunk = resolve));
      let streamed = "";
      const long = client
        .predictStream(
          MODEL,
          JSON.stringify({ prompt: "Tell me a long story", max_tokens: 300, temperature: 0, stream: true }),
          (chunk) => {
            streamed += chunk;
            firstChunk();
          },
        )
        .then((result) => {
          order.push("long");
          return result;
        });
      await decoding; // the long request has produced text: it is in the decode loop
      const sentInTime = order.length === 0 && !/"finish_reason":\s*"/.test(streamed); // its last chunk not here yet
      const joined = await complete(MODEL, short);
      order.push("short");
      const longResult = await long;
      if (!sentInTime && round < 3) continue;
      expect(sentInTime, "the short request was sent before the long one ended (3 rounds)").toBe(true);
      expect(order).toEqual(["short", "long"]);
      expect(joined.choices[0]!.text).toBe(alone.choices[0]!.text);
      expect(longResult.status).toBe(200);
      const lines = streamed
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as { choices: { finish_reason: string | null }[] });
      expect(lines.length).toBeGreaterThan(2);
      expect(lines.at(-1)!.choices[0]!.finish_reason).toMatch(/^(length|stop)$/);
      return;
    }
  }, 180_000);

  it("a seeded sampled request gives the same text alone and among batch mates that join and leave", async () => {
    const seeded = { prompt: "Once upon a time", max_tokens: 24, temperature: 0.9, top_k: 50, top_p: 1, seed: 1234 };
    const alone = (await complete(MODEL, seeded)).choices[0]!.text;
    const mates = [5, 40, 12].map((n, k) => ({ prompt: `Mate ${k} says`, max_tokens: n, temperature: 1, top_p: 1, seed: k }));
    const answers = await Promise.all([
      complete(MODEL, mates[1]!),
      complete(MODEL, seeded),
      complete(MODEL, mates[0]!),
      complete(MODEL, mates[2]!),
    ]);
    expect(answers[1]!.choices[0]!.text).toBe(alone);
    expect(answers.map((a) => a.usage.completion_tokens)).toEqual(
      [40, 24, 5, 12].map((n, i) => Math.min(n, answers[i]!.usage.completion_tokens)),
    );
  }, 180_000);

  it("the two-stage AgentInstruct handler answers under continuous batching, concurrently", async () => {
    const fields = {
      instructions: "1. Read the question.\n2. Add the two numbers.\n3. Give the sum.",
      input_prefix: "Question: ",
      output_prefix: "Answer: ",
    };
    const body = { ...fields, prompt: "Question: What is 2 + 3?\nAnswer:", max_tokens: 8, temperature: 0 };
    const [a, b] = await Promise.all([complete(AGENT, body), complete(AGENT, { ...body, prompt: "Question: What is 4 + 4?\nAnswer:" })]);
    const again = await complete(AGENT, body);
    expect(a.choices[0]!.text).toBe(again.choices[0]!.text);
    expect(b.choices[0]!.text).toEqual(expect.any(String));
  }, 180_000);

  it("a prompt prefix sent again comes from the prefix cache: the same text, the hit in the worker log and on the metrics API", async () => {
    const metricsHits = async () => {
      const text = await (await fetch(`http://127.0.0.1:${srv.ports.metrics}/metrics`)).text();
      return [...text.matchAll(/^tsserve_prefix_cache_hits_total\{[^}]*model_name="cb"[^}]*\} (\S+)$/gm)].reduce(
        (sum, m) => sum + Number(m[1]),
        0,
      );
    };
    const logHits = () =>
      [
        ...fs
          .readFileSync(path.join(srv.paths.logs, "model_log.log"), "utf8")
          .matchAll(/tsserve: cb: prefix cache hit (\d+) of \d+ prompt tokens/g),
      ].map((m) => Number(m[1]));
    // What earlier tests' calls add is published within a second: wait until the total stands still.
    let metricsBefore = await metricsHits();
    for (let now = NaN; now !== metricsBefore; ) {
      await new Promise((r) => setTimeout(r, 1500));
      [now, metricsBefore] = [metricsBefore, await metricsHits()];
    }
    const logBefore = logHits().length;
    const context = Array.from({ length: 12 }, (_, i) => `Fact ${i}: the number ${i} comes before ${i + 1}.`).join(" ");
    const first = await complete(MODEL, { prompt: `${context} Question: what comes after 3?`, max_tokens: 6, temperature: 0 });
    const again = await complete(MODEL, { prompt: `${context} Question: what comes after 3?`, max_tokens: 6, temperature: 0 });
    expect(again.choices[0]!.text).toBe(first.choices[0]!.text);
    // The worker logs each call's hits (the first may hit the chat template's system prefix, which every request shares).
    const [firstHits, againHits] = await waitFor(
      "both calls' lines in the worker log",
      () => {
        const lines = logHits().slice(logBefore);
        return lines.length >= 2 ? lines : undefined;
      },
      15_000,
    );
    expect(againHits).toBeGreaterThanOrEqual(48);
    expect(againHits).toBeGreaterThan(firstHits!);
    // The metrics API adds up the same hits once the worker publishes (once a second).
    await waitFor(
      "the metrics API's hits to grow by the logged ones",
      async () => ((await metricsHits()) === metricsBefore + firstHits! + againHits! ? true : undefined),
      15_000,
    );
  }, 120_000);

  it("one bad request while 4 long generations are in flight fails alone; the 4 finish with their own text", async () => {
    const longs = ["Tell me a story about", "The history of Rome", "A recipe for bread:", "Dear diary, today"].map((prompt) => ({
      prompt,
      max_tokens: 48,
      temperature: 0,
    }));
    const alone = [];
    for (const body of longs) alone.push((await complete(MODEL, body)).choices[0]!.text);
    const started: Promise<void>[] = [];
    const running = longs.map((body, i) => {
      if (i % 2 === 1) return complete(MODEL, body).then((c) => c.choices[0]!.text);
      let seen!: () => void;
      started.push(new Promise<void>((resolve) => (seen = resolve)));
      let text = "";
      return client
        .predictStream(MODEL, JSON.stringify({ ...body, stream: true }), (chunk) => {
          text += chunk;
          return seen();
        })
        .then((r) => {
          expect(r.status).toBe(200);
          return streamedText(text);
        });
    });
    await Promise.all(started); // the streamed two are decoding, and the two sent with them are admitted
    const bad = await Promise.all([
      client.predict(MODEL, '{"prompt": "unterminated'),
      client.predict(MODEL, JSON.stringify({ prompt: "x", max_tokens: -3 })),
      client.predict(MODEL, JSON.stringify({ prompt: "word ".repeat(3000), max_tokens: 4 })),
    ]);
    expect(bad.map((r) => r.status)).toEqual([400, 400, 400]);
    expect(JSON.parse(bad[2]!.body).error.message).toMatch(/context length/);
    expect(await Promise.all(running)).toEqual(alone);
  }, 240_000);

  it("the frontend's table of jobs in the backend does not grow with the requests it answered", async () => {
    const before = frontendJobs();
    const bodies = Array.from({ length: 60 }, (_, i) =>
      i % 5 === 4 ? '{"prompt": 7}' : JSON.stringify({ prompt: `Count ${i}`, max_tokens: 2, temperature: 0, stream: i % 3 === 0 }),
    );
    for (let i = 0; i < bodies.length; i += 6) {
      const answers = await Promise.all(bodies.slice(i, i + 6).map((b) => client.predict(MODEL, b)));
      expect(answers.map((a) => a.status).sort()).toEqual(
        bodies
          .slice(i, i + 6)
          .map((b) => (b.includes(": 7") ? 400 : 200))
          .sort(),
      );
    }
    const after = frontendJobs();
    // Without the retire records every answered job stays: after - before would be 60 here.
    expect(after - before).toBeLessThanOrEqual(2);
  }, 240_000);
});

describe("faults under continuous batching: each fails only the requests it touched", () => {
  it("an exception in one request's inference is its own 500; a request beside it is answered 200", async () => {
    const answers = await Promise.all([ask({ fault: "throw-inference", prompt: "one" }), ask({ prompt: "two", max_tokens: 8 })]);
    expect(answers.map((a) => a.status)).toEqual([500, 200]);
    expect(answers[0]!.body.error!.message).toBe("inference failed on purpose");
  }, 60_000);

  it("a simulated out-of-memory fails only its own request, even when admitted at the same step as another", async () => {
    const answers = await Promise.all([ask({ prompt: `tell me ${OOM_MARKER}` }), ask({ prompt: "a request beside it" })]);
    expect(answers.map((a) => a.status)).toEqual([507, 200]);
    expect(answers[0]!.body.error!.message).toMatch(/^out of memory while generating: CUDA out of memory/);
  }, 60_000);

  it("a Node child that exits answers 503 to the requests it held; the bridge starts another and serves", async () => {
    const before = await faultsChild();
    const [held, exiting] = await Promise.all([
      ask({ fault: "slow", sleep_ms: 3000 }),
      (async () => {
        await new Promise((r) => setTimeout(r, 500));
        return ask({ fault: "exit" });
      })(),
    ]);
    expect([held.status, exiting.status]).toEqual([503, 503]);
    expect(exiting.body.error!.message).toMatch(/^the handler process died during the request .*; it has been restarted$/);
    expect((await ask({ prompt: "after" })).status).toBe(200);
    expect(await faultsChild()).not.toBe(before);
  }, 60_000);

  it("a worker SIGKILLed with streams in flight: the model is READY again by itself (TorchServe 0.12 never marks its in-place restart loaded), /ping Healthy, it serves", async () => {
    const pid = (await client.describeModel(MODEL))[0]!.workers[0]!.pid!;
    let started!: () => void;
    const decoding = new Promise<void>((resolve) => (started = resolve));
    const streams = [0, 1, 2].map((i) =>
      client
        .predictStream(MODEL, JSON.stringify({ prompt: `Story ${i}:`, max_tokens: 400, temperature: 0, stream: true }), () => started())
        .catch((e: Error) => e),
    );
    await decoding;
    process.kill(pid, "SIGKILL");
    const restarted = await waitFor(
      "TorchServe's own restart of the worker",
      async () => {
        const w = (await client.describeModel(MODEL).catch(() => undefined))?.[0]?.workers[0];
        return w?.pid !== undefined && w.pid !== pid ? w.pid : undefined;
      },
      120_000,
      200,
    );
    // The restarted worker sees TorchServe not mark it READY and asks for new worker threads (worker/recovery.py).
    const recovered = await waitFor(
      "a READY worker after the restart",
      async () => {
        const w = (await client.describeModel(MODEL).catch(() => undefined))?.[0]?.workers[0];
        return w?.status === "READY" && w.pid !== pid ? w : undefined;
      },
      120_000,
      500,
    );
    expect(
      recovered.pid,
      "TorchServe marked its in-place restart READY: worker/recovery.py and docs/operations.md need revisiting",
    ).not.toBe(restarted);
    expect((await client.ping()).status).toBe("Healthy");
    expect((await complete(MODEL, { prompt: "Hi", max_tokens: 4, temperature: 0 })).choices[0]!.finish_reason).toMatch(/^(length|stop)$/);
    // The streams the dead worker held are TorchServe's to end: in some runs it ends them with the old thread, in
    // others they stay open until their client gives up (run 24); docs/operations.md says so.
    void streams;
    expect(fs.readFileSync(path.join(srv.paths.logs, "model_log.log"), "utf8")).toContain("Asking the management API at");
  }, 300_000);

  it("`tsserve restart-workers` stops a model's workers and starts as many again, READY", async () => {
    const before = (await client.describeModel(MODEL))[0]!.workers.map((w) => w.pid);
    const result = await cli(["restart-workers", MODEL, "--timeout", "120"], 180_000, srv.env);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as { model: string; workers: { pid: number; status: string }[] };
    expect(report.model).toBe(MODEL);
    expect(report.workers.map((w) => w.status)).toEqual(["READY"]);
    expect(before).not.toContain(report.workers[0]!.pid);
    expect((await complete(MODEL, { prompt: "Hi", max_tokens: 4, temperature: 0 })).choices[0]!.finish_reason).toMatch(/^(length|stop)$/);
  }, 240_000);

  it(`a child that hangs: 504 after ${HANDLE_TIMEOUT_S} s counted from the request's arrival, the child is killed and replaced`, async () => {
    const before = await faultsChild();
    const started = Date.now();
    const answer = await ask({ fault: "hang" });
    expect(answer.status).toBe(504);
    expect(answer.body.error!.message).toBe(
      `the handler did not answer within ${HANDLE_TIMEOUT_S} s (handler.handle_timeout_s); its process was stopped and restarted`,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(HANDLE_TIMEOUT_S * 1000);
    expect((await ask({ prompt: "after" })).status).toBe(200);
    expect(await faultsChild()).not.toBe(before);
  }, 60_000);
});

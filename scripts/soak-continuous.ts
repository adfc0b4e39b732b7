/**
 * `npm run soak:continuous`: continuous batching under load on a real TorchServe 0.12
 * with SmolLM2-135M-Instruct (configs/smollm2-135m-instruct.yaml, asyncCommunication: true).
 *
 * 5,000 requests (--requests) from 24 concurrent clients (--concurrency), a seeded mix of:
 * the seed route and the OpenAI completions and chat routes, streamed and not, greedy and
 * seeded sampling; malformed bodies and over-long prompts; bodies the channel to Node cannot
 * carry (an integer beyond 64 bits, a lone surrogate, 300-deep nesting: each a 400), an answer
 * over the response limit (max_response_size is lowered to 2 MiB for the run: a 413), a request
 * wider than the row limit (a 400); clients that disconnect
 * mid-stream; /tokenize answers of about 1 MB beside the streams (the worker socket's race: issue 38);
 * full-context prompts (the model's whole context, answered with the text they get alone while the
 * streams go on); and a SIGKILL of the Node child every --requests / --kills requests.
 * --engine vllm|transformers picks the engine that serves (the shipped config's: vllm).
 * Every distinct well-formed request is first sent alone; under load each must answer 200
 * with exactly that text (a 503 is allowed only for requests in flight when a child was
 * killed), every bad one its own 400. Frontend and worker RSS and open descriptors are
 * sampled every second: the summary compares the first quarter of the load with the last. The
 * frontend (a JVM, whose RSS follows its reserved heap) is also judged by its live heap after a
 * full GC and its live request jobs, before and after the load (jcmd GC.class_histogram).
 * After `tsserve stop` no process of the run may be left. Loopback only; bounded in count
 * and time (--max-minutes). Summary: .work/e2e-soak-continuous/summary.json and stdout.
 * Exit code 1 when a check failed.
 */
import fs from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createArchive } from "../src/archive/archive.ts";
import { stopServer } from "../src/client/torchserve-process.ts";
import { ROOT, isolatedServer, leftovers, writeFile } from "../test/e2e/helpers.ts";
import {
  type Answer,
  countLines,
  fdCount,
  jvmLiveHeap,
  nodeChildren,
  parseSoakArgs,
  pickWeighted,
  post,
  prng,
  rssMiB,
  runSoak,
  startSoakServer,
} from "./soak-lib.ts";

const args = parseSoakArgs({
  requests: "5000",
  concurrency: "24",
  kills: "8",
  "port-base": "58080",
  "max-minutes": "40",
  engine: "vllm",
});
const ENGINE = args.values.engine;
if (ENGINE !== "vllm" && ENGINE !== "transformers") throw new Error(`--engine must be vllm or transformers, not ${ENGINE}`);
const TOTAL = args.total;
const CONCURRENCY = args.concurrency;
const KILLS = Number(args.values.kills);
const DEADLINE = args.deadline;
const MODEL = "smollm2";
const REQUEST_TIMEOUT_MS = 120_000;
const random = prng(args.seed);

const PROMPTS = [
  "The capital of France is",
  "Write a haiku about the sea.",
  "2 + 2 =",
  "List three colors:",
  "Translate 'good morning' to French:",
  "def fibonacci(n):",
  "The best way to learn is",
  "Q: What is the boiling point of water?\nA:",
  "Once upon a time",
  "Name a planet:",
  "Explique la photosynthèse en une phrase.",
  "天気はどうですか",
  "Why is the sky blue?",
  "A limerick about a cat:",
];

type Kind =
  | "seed"
  | "seed-stream"
  | "seed-sampled"
  | "completions"
  | "completions-stream"
  | "chat"
  | "malformed"
  | "too-long"
  | "disconnect"
  | "big-integer"
  | "lone-surrogate"
  | "deep-nesting"
  | "over-limit"
  | "too-wide"
  | "big-answer"
  | "full-context";
const MIX: [Kind, number][] = [
  ["seed", 290],
  ["seed-stream", 140],
  ["seed-sampled", 60],
  ["completions", 140],
  ["completions-stream", 60],
  ["chat", 120],
  ["malformed", 50],
  ["too-long", 30],
  ["disconnect", 60],
  ["big-integer", 12],
  ["lone-surrogate", 12],
  ["deep-nesting", 12],
  ["over-limit", 6],
  ["too-wide", 8],
  ["big-answer", 12],
  ["full-context", 1],
];
/** Words of "word " that make a prompt of SmolLM2's whole context (8,192 tokens) less its answer and the chat turn around it. */
const FULL_CONTEXT_WORDS = 8100;
/** The frontend's max_response_size for the run: the over-limit kind's answer (echo logprobs of 16 prompts) exceeds it. */
const MAX_RESPONSE_BYTES = 2 * 1024 * 1024;
const nested = (depth: number): string => `${"[".repeat(depth)}1${"]".repeat(depth)}`;
const MALFORMED = [
  '{"prompt": "x",',
  "[1, 2]",
  '{"max_tokens": 2}',
  '{"prompt": 42}',
  '{"prompt": "x", "max_tokens": -1}',
  '{"prompt": "x", "temperature": "hot"}',
];

interface Job {
  kind: Kind;
  path: string;
  body: string;
  stream: boolean;
  /** Key of the text it must give (its own body's alone answer); absent for bad requests. */
  expect?: string;
  /** A bad request's status (default 400). */
  want?: number;
}

const pick = (): Kind => pickWeighted(random, MIX, "seed");

function choose<T>(items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

function job(kind: Kind): Job {
  const prompt = choose(PROMPTS);
  const maxTokens = 3 + Math.floor(random() * 6);
  const seedBody = (extra: Record<string, unknown>) => JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0, ...extra });
  const route = (p: string) => `/predictions/${MODEL}/1.0/${p}`;
  switch (kind) {
    case "seed":
    case "seed-stream":
    case "disconnect": {
      const body = seedBody({});
      return { kind, path: route(""), body, stream: kind !== "seed", expect: kind === "disconnect" ? undefined : `seed ${body}` };
    }
    case "seed-sampled": {
      const body = seedBody({ temperature: 0.8, top_p: 0.95, seed: Math.floor(random() * 4) });
      return { kind, path: route(""), body, stream: false, expect: `seed ${body}` };
    }
    case "completions":
    case "completions-stream": {
      const body = JSON.stringify({ model: MODEL, prompt, max_tokens: maxTokens, temperature: 0 });
      return {
        kind,
        path: route("v1/completions"),
        body: kind === "completions" ? body : JSON.stringify({ ...JSON.parse(body), stream: true }),
        stream: kind !== "completions",
        expect: `completions ${body}`,
      };
    }
    case "chat": {
      const body = JSON.stringify({ model: MODEL, messages: [{ role: "user", content: prompt }], max_tokens: maxTokens, temperature: 0 });
      return { kind, path: route("v1/chat/completions"), body, stream: false, expect: `chat ${body}` };
    }
    case "malformed":
      return { kind, path: route(""), body: choose(MALFORMED), stream: false };
    case "too-long":
      return {
        kind,
        path: route(choose(["", "v1/completions"])),
        body: JSON.stringify({ prompt: "word ".repeat(9000), max_tokens: 4 }),
        stream: false,
      };
    case "big-integer":
      return {
        kind,
        path: route(choose(["", "v1/completions"])),
        body: `{"model":"${MODEL}","prompt":"Hello","max_tokens":2,"x":18446744073709551616}`,
        stream: false,
      };
    case "lone-surrogate":
      return {
        kind,
        path: route(choose(["", "v1/completions"])),
        body: `{"model":"${MODEL}","prompt":"a\\ud800b","max_tokens":2}`,
        stream: false,
      };
    case "deep-nesting":
      return {
        kind,
        path: route(choose(["", "v1/completions"])),
        body: `{"model":"${MODEL}","prompt":"Hello","max_tokens":2,"x":${nested(300)}}`,
        stream: false,
      };
    case "over-limit": {
      const prompts = Array.from({ length: 16 }, (_, k) => `${k} ${"word ".repeat(300)}`);
      return {
        kind,
        path: route("v1/completions"),
        body: JSON.stringify({ model: MODEL, prompt: prompts, echo: true, max_tokens: 0, logprobs: 20 }),
        stream: false,
        want: 413,
      };
    }
    case "big-answer":
      return {
        kind,
        path: route("tokenize"),
        body: JSON.stringify({ prompt: `${choose(PROMPTS)} ${"word ".repeat(150_000)}`, add_special_tokens: false }),
        stream: false,
        want: 200,
      };
    case "full-context": {
      const body = JSON.stringify({ prompt: `${prompt} ${"word ".repeat(FULL_CONTEXT_WORDS)}`, max_tokens: 4, temperature: 0 });
      return { kind, path: route(""), body, stream: false, expect: `seed ${body}` };
    }
    case "too-wide":
      return {
        kind,
        path: route("v1/completions"),
        body: JSON.stringify({ model: MODEL, prompt: Array(8).fill(prompt), n: 10, max_tokens: 2, temperature: 0.7 }),
        stream: false,
      };
  }
}

/**
 * The generated text of a response body, whichever route and framing it came from; null for a
 * stream that ended with an error line (its status was 200 before the error, as with any stream).
 */
function textOf(job: Job, body: string): string | null {
  if (!job.stream) {
    const parsed = JSON.parse(body) as { choices: { text?: string; message?: { content: string } }[] };
    return parsed.choices[0]!.message?.content ?? parsed.choices[0]!.text ?? "";
  }
  const lines = body.split("\n").filter((l) => l.trim() && l.trim() !== "data: [DONE]");
  const chunks = lines.map((l) => JSON.parse(l.replace(/^data: /, "")) as { choices?: { text?: string }[] });
  if (chunks.some((chunk) => !chunk.choices)) return null;
  return chunks.map((chunk) => chunk.choices![0]?.text ?? "").join("");
}

interface Sample {
  at: number;
  frontendMiB: number;
  workerMiB: number;
  fds: number;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

function quarters(samples: Sample[], key: keyof Omit<Sample, "at">): { first: number; last: number; growth: number } {
  const q = Math.max(1, Math.floor(samples.length / 4));
  const first = mean(samples.slice(0, q).map((s) => s[key]));
  const last = mean(samples.slice(-q).map((s) => s[key]));
  return {
    first: Math.round(first * 10) / 10,
    last: Math.round(last * 10) / 10,
    growth: first ? Math.round(((last - first) / first) * 1000) / 10 : 0,
  };
}

async function main(): Promise<number> {
  const srv = isolatedServer("soak-continuous", [`max_response_size=${MAX_RESPONSE_BYTES}`], args.portBase);
  const started = Date.now();
  const config = fs
    .readFileSync(path.join(ROOT, "configs", "smollm2-135m-instruct.yaml"), "utf8")
    .replace(/model_path: .*/, `model_path: "${path.join(ROOT, ".cache", "smollm2-135m-instruct")}"`)
    .replace(/engine: .*/, `engine: "${ENGINE}"`);
  const configFile = writeFile(path.join(srv.scratch, `${MODEL}.yaml`), config);
  await createArchive({
    modelName: MODEL,
    version: "1.0",
    handler: path.join(ROOT, "handlers", "smollm2-135m-instruct.ts"),
    configFile,
    exportPath: srv.modelStore,
  });
  const summary: Record<string, unknown> = {
    requests: TOTAL,
    concurrency: CONCURRENCY,
    seed: args.seed,
    model: "SmolLM2-135M-Instruct (CPU, float32)",
    engine: ENGINE,
  };
  const failures: string[] = [];
  let stopped = false;
  try {
    const { client, java, token } = await startSoakServer(srv, MODEL, 1);
    const workerPid = (await client.describeModel(MODEL))[0]!.workers[0]!.pid!;
    const base = client.addresses.inference;
    const send = (j: Job, disconnect = false) => post(new URL(base + j.path), token(), j.body, REQUEST_TIMEOUT_MS, disconnect);

    const jobs = Array.from({ length: TOTAL }, () => job(pick()));
    // Every distinct well-formed request alone first: the text it must give under load.
    const alone = new Map<string, string>();
    for (const j of jobs) {
      if (!j.expect || alone.has(j.expect)) continue;
      const reference = { ...j, stream: false, body: JSON.stringify({ ...JSON.parse(j.body), stream: false }) };
      const answer = await send(reference);
      if (answer.status !== 200) throw new Error(`alone: ${j.path} ${j.body} -> ${answer.status} ${answer.body.slice(0, 300)}`);
      alone.set(j.expect, textOf(reference, answer.body)!);
    }
    console.error(
      `soak: ${alone.size} distinct requests answered alone in ${((Date.now() - started) / 1000).toFixed(0)} s; load: ${TOTAL} requests, concurrency ${CONCURRENCY}`,
    );

    const samples: Sample[] = [];
    const sampler = setInterval(() => {
      const node = nodeChildren([workerPid]);
      samples.push({
        at: Date.now(),
        frontendMiB: rssMiB(java.pid),
        workerMiB: rssMiB(workerPid),
        fds: fdCount(java.pid) + fdCount(workerPid) + node.reduce((s, p) => s + fdCount(p.pid), 0),
      });
    }, 1000);

    const byKind: Record<string, Record<string, number>> = {};
    let next = 0;
    let kills = 0;
    let killedAt = -Infinity;
    let mismatches = 0;
    let lost = 0;
    const killEvery = Math.max(1, Math.floor(TOTAL / KILLS));
    const runOne = async (i: number): Promise<void> => {
      const j = jobs[i]!;
      const sentAt = Date.now();
      let answer: Answer;
      try {
        answer = await send(j, j.kind === "disconnect");
      } catch (error) {
        lost += 1;
        failures.push(`#${i} ${j.kind}: no answer (${(error as Error).message})`);
        return;
      }
      const counts = byKind[j.kind] ?? {};
      counts[answer.status] = (counts[answer.status] ?? 0) + 1;
      byKind[j.kind] = counts;
      const nearKill = Math.abs(sentAt - killedAt) < 15_000 || killedAt > sentAt;
      if (j.kind === "disconnect") return;
      if (!j.expect) {
        if (answer.status === 503 && nearKill) return; // its Node child (which validates bodies) was killed first
        const want = j.want ?? 400;
        if (answer.status !== want) failures.push(`#${i} ${j.kind}: ${answer.status} (want ${want}) ${answer.body.slice(0, 200)}`);
        return;
      }
      if (answer.status === 503 && nearKill) return; // in flight when its Node child was killed
      if (answer.status !== 200) {
        failures.push(`#${i} ${j.kind}: ${answer.status} ${answer.body.slice(0, 200)}`);
        return;
      }
      const text = textOf(j, answer.body);
      if (text === null && nearKill) return; // a stream whose Node child was killed: its error is its last line
      if (text !== alone.get(j.expect)) {
        mismatches += 1;
        failures.push(`#${i} ${j.kind}: text ${JSON.stringify(text)} differs from alone ${JSON.stringify(alone.get(j.expect))}`);
      }
    };
    const lane = async (): Promise<void> => {
      while (next < TOTAL && Date.now() < DEADLINE) {
        const i = next++;
        if (i > 0 && i % killEvery === 0 && kills < KILLS) {
          const child = nodeChildren([workerPid])[0];
          if (child) {
            process.kill(child.pid, "SIGKILL");
            kills += 1;
            killedAt = Date.now();
          }
        }
        await runOne(i).catch((error: Error) => failures.push(`#${i} ${jobs[i]!.kind}: ${error.message}`));
        if (i % 250 === 0)
          console.error(`soak: ${i}/${TOTAL}, ${failures.length} failures, ${((Date.now() - started) / 1000).toFixed(0)} s`);
      }
    };
    const REST_JOB = "org.pytorch.serve.job.RestJob";
    const heapBefore = jvmLiveHeap(java.pid, REST_JOB);
    const loadStarted = Date.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, lane));
    const loadSeconds = (Date.now() - loadStarted) / 1000;
    clearInterval(sampler);
    await sleep(2000); // the last answers retire their jobs
    const heapAfter = jvmLiveHeap(java.pid, REST_JOB);
    const workerNow = (await client.describeModel(MODEL))[0]!.workers[0]!.pid;
    await stopServer({ paths: srv.paths });
    stopped = true;
    await sleep(500);
    const left = leftovers(srv.paths);
    Object.assign(summary, {
      sent: next,
      notSent: TOTAL - next,
      lost,
      mismatches,
      byKind,
      childKills: kills,
      workerRestarted: workerNow !== workerPid,
      loadSeconds,
      requestsPerSecond: Math.round((next / loadSeconds) * 10) / 10,
      frontendRssMiB: quarters(samples, "frontendMiB"),
      frontendLiveHeap: {
        before: heapBefore,
        after: heapAfter,
        growth: Math.round(((heapAfter.heapMiB - heapBefore.heapMiB) / heapBefore.heapMiB) * 1000) / 10,
      },
      workerRssMiB: quarters(samples, "workerMiB"),
      openFds: quarters(samples, "fds"),
      samples: samples.length,
      leftoverProcesses: left,
      failures: failures.slice(0, 30),
      failureCount: failures.length,
    });
  } finally {
    if (!stopped) await stopServer({ paths: srv.paths }).catch((error) => console.error(`soak: stopping TorchServe: ${error}`));
    summary.wallSeconds = (Date.now() - started) / 1000;
    fs.writeFileSync(path.join(srv.paths.work, "summary.json"), `${JSON.stringify(summary, null, 2)}\n`);
  }
  const s = summary as {
    sent: number;
    notSent: number;
    lost: number;
    mismatches: number;
    byKind: Record<string, Record<string, number>>;
    childKills: number;
    workerRestarted: boolean;
    loadSeconds: number;
    requestsPerSecond: number;
    wallSeconds: number;
    leftoverProcesses: string[];
    failureCount: number;
    frontendLiveHeap: { before: { heapMiB: number; instances: number }; after: { heapMiB: number; instances: number }; growth: number };
    frontendRssMiB: { first: number; last: number; growth: number };
    workerRssMiB: { first: number; last: number; growth: number };
    openFds: { first: number; last: number; growth: number };
  };
  const q = (x: { first: number; last: number; growth: number }) => `${x.first} -> ${x.last} (${x.growth >= 0 ? "+" : ""}${x.growth}%)`;
  console.log(
    [
      "## soak:continuous summary",
      "",
      `- requests sent: ${s.sent} (not sent: ${s.notSent}) at concurrency ${CONCURRENCY}, ${s.requestsPerSecond} requests/s over ${s.loadSeconds.toFixed(0)} s`,
      ...countLines(s.byKind),
      `- checks failed: ${s.failureCount} (no answer: ${s.lost}, text differing from alone: ${s.mismatches})`,
      `- Node children SIGKILLed: ${s.childKills}; Python worker restarted: ${s.workerRestarted}`,
      `- RSS MiB, first quarter -> last quarter of the load: frontend ${q(s.frontendRssMiB)}, worker ${q(s.workerRssMiB)}`,
      `- frontend live heap after a full GC, before -> after the load: ${s.frontendLiveHeap.before.heapMiB} -> ${s.frontendLiveHeap.after.heapMiB} MiB (${s.frontendLiveHeap.growth >= 0 ? "+" : ""}${s.frontendLiveHeap.growth}%); request jobs it holds: ${s.frontendLiveHeap.before.instances} -> ${s.frontendLiveHeap.after.instances}`,
      `- open descriptors (frontend + worker + node), first -> last quarter: ${q(s.openFds)}`,
      `- processes left after tsserve stop: ${s.leftoverProcesses.length}; whole run ${s.wallSeconds.toFixed(0)} s`,
    ].join("\n"),
  );
  const ok =
    s.failureCount === 0 &&
    s.notSent === 0 &&
    s.leftoverProcesses.length === 0 &&
    s.childKills >= Math.min(KILLS, 5) &&
    // The frontend is a JVM: its RSS follows the heap it has reserved, so what must stay flat is its live heap.
    s.frontendLiveHeap.growth <= 5 &&
    s.frontendLiveHeap.after.instances <= 2 &&
    s.workerRssMiB.growth <= 5 &&
    s.openFds.last <= s.openFds.first + 2;
  if (!ok) console.error("soak: FAILED");
  return ok ? 0 : 1;
}

runSoak(main);

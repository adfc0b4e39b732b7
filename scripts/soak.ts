/**
 * `npm run soak`: 2,000 requests over two workers of the tiny model on a real
 * TorchServe, with faults injected at random (Node children SIGKILLed from
 * outside, handlers that hang, exit or crash, a simulated out-of-memory in
 * generate, bad inputs), then a summary: requests sent, answered, by status,
 * lost (must be 0), node processes and open file descriptors before and after
 * (equal), worker memory before and after. Exit code 1 when a request was lost
 * or processes or descriptors leaked.
 *
 * The handler is the test-only test/fixtures/handlers/fault-handler.ts, packed
 * with a copy of the shim that can simulate an out-of-memory (see
 * test/e2e/helpers.ts `faultShimPackage`). Loopback only; bounded in count
 * (--requests) and time (--max-minutes); TorchServe is stopped at the end
 * whatever happens. The summary is also written to .work/e2e-soak/summary.json.
 *
 * Options: --requests N (2000), --concurrency C (4), --seed S (1),
 * --port-base P (48080: inference P, management P+1, metrics P+2, gRPC P+10/P+11),
 * --max-minutes M (30).
 */
import fs from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createArchive } from "../src/archive/archive.ts";
import type { ProcInfo } from "../src/client/procs.ts";
import { stopServer } from "../src/client/torchserve-process.ts";
import { OOM_MARKER, ROOT, faultShimPackage, isolatedServer, leftovers, tinyConfig } from "../test/e2e/helpers.ts";
import {
  countLines,
  fdCount,
  joinCounts,
  nodeChildren,
  parseSoakArgs,
  pickWeighted,
  post as postOnce,
  prng,
  rssMiB,
  runSoak,
  startSoakServer,
} from "./soak-lib.ts";

const args = parseSoakArgs({ requests: "2000", concurrency: "4", "port-base": "48080", "max-minutes": "30" });
const TOTAL = args.total;
const CONCURRENCY = args.concurrency;
const DEADLINE = args.deadline;
const MODEL = "soak";
const WORKERS = 2;
const HANDLE_TIMEOUT_S = 3;
const REQUEST_TIMEOUT_MS = 60_000;

const random = prng(args.seed);

const BAD_BODIES = [
  '{"prompt": "x",',
  "[1, 2]",
  '{"max_tokens": 2}',
  '{"prompt": 42}',
  '{"prompt": "x", "max_tokens": -1}',
  '{"prompt": "x", "max_tokens": 99}',
  '{"prompt": "x", "fault": "no-such-fault"}',
  '{"prompt": "x", "temperature": NaN}',
];

type Kind = "good" | "bad-input" | "hang" | "exit" | "crash" | "oom";
/** Per 1,000 requests; the rest are good. Child kills from outside come on their own timer. */
const MIX: [Kind, number][] = [
  ["bad-input", 60],
  ["hang", 8],
  ["exit", 8],
  ["crash", 8],
  ["oom", 8],
];

const pick = (): Kind => pickWeighted(random, MIX, "good");

function bodyFor(kind: Kind, i: number): string {
  switch (kind) {
    case "good":
      return JSON.stringify({ prompt: `request ${i}`, max_tokens: 2 });
    case "bad-input":
      return BAD_BODIES[Math.floor(random() * BAD_BODIES.length)]!;
    case "oom":
      return JSON.stringify({ prompt: `request ${i} ${OOM_MARKER}`, max_tokens: 2 });
    default:
      return JSON.stringify({ prompt: `request ${i}`, max_tokens: 2, fault: kind });
  }
}

/** The status of one POST (its body read and dropped). */
async function post(url: URL, token: string | undefined, body: string): Promise<number> {
  return (await postOnce(url, token, body, REQUEST_TIMEOUT_MS)).status;
}

interface Snapshot {
  frontend: { pid: number; fds: number };
  workers: { pid: number; fds: number; rssMiB: number }[];
  node: { pid: number; fds: number; rssMiB: number }[];
  nodeProcesses: number;
  fdsTotal: number;
}

function snapshot(java: ProcInfo, workerPids: number[]): Snapshot {
  const node = nodeChildren(workerPids);
  const workers = workerPids.map((pid) => ({ pid, fds: fdCount(pid), rssMiB: rssMiB(pid) }));
  const children = node.map((p) => ({ pid: p.pid, fds: fdCount(p.pid), rssMiB: rssMiB(p.pid) }));
  const frontend = { pid: java.pid, fds: fdCount(java.pid) };
  return {
    frontend,
    workers,
    node: children,
    nodeProcesses: node.length,
    fdsTotal: frontend.fds + workers.reduce((s, w) => s + w.fds, 0) + children.reduce((s, c) => s + c.fds, 0),
  };
}

async function main(): Promise<number> {
  const srv = isolatedServer("soak", [], args.portBase);
  const started = Date.now();
  const configFile = tinyConfig(path.join(srv.scratch, `${MODEL}.yaml`), {
    minWorkers: WORKERS,
    maxWorkers: WORKERS,
    asyncCommunication: "false",
    batchSize: 4,
    maxBatchDelay: 20,
    responseTimeout: 30,
    "handler.handle_timeout_s": HANDLE_TIMEOUT_S,
  });
  await createArchive(
    {
      modelName: MODEL,
      version: "1.0",
      handler: path.join(ROOT, "test", "fixtures", "handlers", "fault-handler.ts"),
      configFile,
      exportPath: srv.modelStore,
    },
    { shimPackage: faultShimPackage(srv.scratch) },
  );
  const summary: Record<string, unknown> = { requests: TOTAL, workers: WORKERS, concurrency: CONCURRENCY, seed: args.seed };
  try {
    const { client, java, token } = await startSoakServer(srv, MODEL, WORKERS);
    const workerPids = (await client.describeModel(MODEL))[0]!.workers.map((w) => w.pid!);
    const url = new URL(`${client.addresses.inference}/predictions/${MODEL}`);

    // Warm up both workers, then take the "before" picture.
    await Promise.all(Array.from({ length: 8 }, (_, i) => post(url, token(), bodyFor("good", -i))));
    await sleep(1000);
    const before = snapshot(java, workerPids);
    console.error(`soak: ${TOTAL} requests, ${WORKERS} workers, concurrency ${CONCURRENCY}; before: ${JSON.stringify(before)}`);

    const byStatus: Record<string, number> = {};
    const byKind: Record<string, Record<string, number>> = {};
    const lost: string[] = [];
    let sent = 0;
    let answered = 0;
    let kills = 0;
    let next = 0;
    const killEvery = Math.max(1, Math.floor(TOTAL / 20)); // about 20 children SIGKILLed from outside
    const runOne = async (i: number): Promise<void> => {
      const kind = pick();
      const body = bodyFor(kind, i);
      sent += 1;
      try {
        const status = await post(url, token(), body);
        answered += 1;
        byStatus[status] = (byStatus[status] ?? 0) + 1;
        const counts = byKind[kind] ?? {};
        counts[status] = (counts[status] ?? 0) + 1;
        byKind[kind] = counts;
      } catch (error) {
        lost.push(`#${i} ${kind}: ${(error as Error).message}`);
      }
    };
    const lane = async (): Promise<void> => {
      while (next < TOTAL && Date.now() < DEADLINE) {
        const i = next++;
        if (i > 0 && i % killEvery === 0) {
          const children = nodeChildren(workerPids);
          const victim = children[Math.floor(random() * children.length)];
          if (victim) {
            process.kill(victim.pid, "SIGKILL");
            kills += 1;
          }
        }
        await runOne(i);
        if (i % 200 === 0)
          console.error(
            `soak: ${i}/${TOTAL} sent, ${answered} answered, ${lost.length} lost, ${((Date.now() - started) / 1000).toFixed(0)} s`,
          );
      }
    };
    const loadStarted = Date.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, lane));
    const loadSeconds = (Date.now() - loadStarted) / 1000;

    // Let replaced children finish starting, make sure each worker has one, then take the "after" picture.
    await sleep(3000);
    await Promise.all(Array.from({ length: 8 }, (_, i) => post(url, token(), bodyFor("good", -100 - i))));
    await sleep(1000);
    const after = snapshot(
      java,
      (await client.describeModel(MODEL))[0]!.workers.map((w) => w.pid!),
    );
    const workersRestarted = after.workers.map((w) => w.pid).filter((pid) => !workerPids.includes(pid)).length;
    Object.assign(summary, {
      sent,
      answered,
      lost: lost.length,
      notSent: TOTAL - sent,
      byStatus,
      byKind,
      childKillsFromOutside: kills,
      workersRestarted,
      nodeProcesses: { before: before.nodeProcesses, after: after.nodeProcesses },
      openFds: { before: before.fdsTotal, after: after.fdsTotal, detail: { before, after } },
      workerRssMiB: { before: before.workers.map((w) => w.rssMiB), after: after.workers.map((w) => w.rssMiB) },
      nodeRssMiB: { before: before.node.map((w) => w.rssMiB), after: after.node.map((w) => w.rssMiB) },
      loadSeconds,
      lostDetail: lost.slice(0, 20),
    });
  } finally {
    await stopServer({ paths: srv.paths }).catch((error) => console.error(`soak: stopping TorchServe: ${error}`));
    summary.leftoverProcesses = leftovers(srv.paths);
    summary.wallSeconds = (Date.now() - started) / 1000;
    fs.writeFileSync(path.join(srv.paths.work, "summary.json"), `${JSON.stringify(summary, null, 2)}\n`);
  }
  const s = summary as {
    sent: number;
    answered: number;
    lost: number;
    notSent: number;
    byStatus: Record<string, number>;
    byKind: Record<string, Record<string, number>>;
    childKillsFromOutside: number;
    workersRestarted: number;
    nodeProcesses: { before: number; after: number };
    openFds: { before: number; after: number };
    workerRssMiB: { before: number[]; after: number[] };
    nodeRssMiB: { before: number[]; after: number[] };
    loadSeconds: number;
    wallSeconds: number;
    leftoverProcesses: string[];
  };
  const lines = [
    "## soak summary",
    "",
    `- requests sent: ${s.sent} (not sent: ${s.notSent}), answered: ${s.answered}, lost: ${s.lost}`,
    `- by status: ${joinCounts(s.byStatus)}`,
    ...countLines(s.byKind),
    `- Node children SIGKILLed from outside: ${s.childKillsFromOutside}; Python workers restarted: ${s.workersRestarted}`,
    `- node processes before / after: ${s.nodeProcesses.before} / ${s.nodeProcesses.after}`,
    `- open file descriptors (frontend + workers + node children) before / after: ${s.openFds.before} / ${s.openFds.after}`,
    `- worker RSS MiB before / after: ${s.workerRssMiB.before.join(", ")} / ${s.workerRssMiB.after.join(", ")}`,
    `- node child RSS MiB before / after: ${s.nodeRssMiB.before.join(", ")} / ${s.nodeRssMiB.after.join(", ")}`,
    `- load phase ${s.loadSeconds.toFixed(1)} s, whole run ${s.wallSeconds.toFixed(1)} s; processes left after stop: ${s.leftoverProcesses.length}`,
  ];
  console.log(lines.join("\n"));
  const ok =
    s.lost === 0 &&
    s.notSent === 0 &&
    s.nodeProcesses.before === s.nodeProcesses.after &&
    s.openFds.before === s.openFds.after &&
    s.leftoverProcesses.length === 0;
  if (!ok) console.error("soak: FAILED (lost requests, unsent requests, or leaked processes / descriptors)");
  return ok ? 0 : 1;
}

runSoak(main);

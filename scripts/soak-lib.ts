/** What both soak scripts share: a seeded PRNG, a process's descriptors and memory, the server, the POST, the summary's counts. */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { parseArgs } from "node:util";
import type { TorchServeClient } from "../src/client/http.ts";
import { readKeyFile } from "../src/client/keys.ts";
import { registerWatched } from "../src/client/model-registration.ts";
import { allProcs, type ProcInfo, stillRunning } from "../src/client/procs.ts";
import { connect, runningServer, startServer } from "../src/client/torchserve-process.ts";
import type { IsolatedServer } from "../test/e2e/helpers.ts";

/** mulberry32: a small seeded PRNG, so a run can be repeated. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function fdCount(pid: number): number {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/** Resident memory in MiB, one decimal (0 for a process that is gone). */
export function rssMiB(pid: number): number {
  try {
    const kib = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
    return Math.round(kib / 102.4) / 10;
  } catch {
    return 0;
  }
}

/** Runs a JDK `jcmd` command on a JVM (the jcmd beside the process's own java binary). */
export function jcmd(pid: number, ...command: string[]): string {
  const bin = path.join(path.dirname(fs.realpathSync(`/proc/${pid}/exe`)), "jcmd");
  return execFileSync(bin, [String(pid), ...command], { encoding: "utf8", maxBuffer: 64 << 20 });
}

/**
 * A JVM's live heap in MiB and its live instances of one class: `GC.class_histogram` runs a full
 * GC first, so this is what the heap holds, not what the JVM has reserved (RSS grows as the heap
 * expands towards its limit and does not shrink, whether or not anything leaks).
 */
export function jvmLiveHeap(pid: number, className: string): { heapMiB: number; instances: number } {
  const histogram = jcmd(pid, "GC.class_histogram").split("\n");
  const total =
    histogram
      .find((line) => line.trim().startsWith("Total"))
      ?.trim()
      .split(/\s+/) ?? [];
  const row =
    histogram
      .find((line) => line.trim().endsWith(` ${className}`))
      ?.trim()
      .split(/\s+/) ?? [];
  return { heapMiB: Math.round((Number(total[2] ?? 0) / 2 ** 20) * 10) / 10, instances: Number(row[1] ?? 0) };
}

export interface Answer {
  status: number;
  body: string;
}

/**
 * One POST on its own connection (no keep-alive: the frontend's descriptors settle back);
 * `disconnectAfterFirstChunk` drops the connection once the stream has begun.
 */
export function post(
  url: URL,
  token: string | undefined,
  body: string,
  timeoutMs: number,
  disconnectAfterFirstChunk = false,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      {
        method: "POST",
        agent: false,
        headers: {
          "Content-Type": "application/json",
          "Content-Length": Buffer.byteLength(body),
          ...(token ? { Authorization: `Bearer ${token}` } : {}),
        },
        timeout: timeoutMs,
      },
      (response) => {
        let text = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => {
          text += chunk;
          if (disconnectAfterFirstChunk) {
            request.destroy();
            resolve({ status: response.statusCode ?? 0, body: text });
          }
        });
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body: text }));
        response.on("error", (error) =>
          disconnectAfterFirstChunk ? resolve({ status: response.statusCode ?? 0, body: text }) : reject(error),
        );
      },
    );
    request.on("timeout", () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    request.on("error", (error) => (disconnectAfterFirstChunk && request.destroyed ? undefined : reject(error)));
    request.end(body);
  });
}

/** A kind drawn from weights per 1,000; `rest` when the draw falls past them all. */
export function pickWeighted<K>(random: () => number, mix: readonly [K, number][], rest: K): K {
  let r = random() * 1000;
  for (const [kind, weight] of mix) {
    if (r < weight) return kind;
    r -= weight;
  }
  return rest;
}

/** The Node children (bundled handlers) running under these Python workers. */
export function nodeChildren(workerPids: number[]): ProcInfo[] {
  return allProcs().filter((p) => workerPids.includes(p.ppid) && p.cmdline.includes("handler.mjs") && stillRunning(p));
}

/** Summary lines `  - kind: status: count, ...`, one per kind. */
export function countLines(byKind: Record<string, Record<string, number>>): string[] {
  return Object.entries(byKind).map(([kind, statuses]) => `  - ${kind}: ${joinCounts(statuses)}`);
}

export function joinCounts(counts: Record<string, number>): string {
  return Object.entries(counts)
    .map(([k, v]) => `${k}: ${v}`)
    .join(", ");
}

export interface SoakServer {
  client: TorchServeClient;
  java: ProcInfo;
  token: () => string | undefined;
}

/** Starts the isolated TorchServe and registers the archive `<model>.mar` with its workers. */
export async function startSoakServer(srv: IsolatedServer, model: string, workers: number): Promise<SoakServer> {
  await startServer({ paths: srv.paths, tsConfig: srv.tsConfig, modelStore: srv.modelStore });
  const client = connect(srv.paths);
  await registerWatched(client, { url: `${model}.mar`, modelName: model, initialWorkers: workers }, srv.paths);
  return { client, java: runningServer(srv.paths)!, token: () => readKeyFile(srv.paths.keyFile)?.inference.key };
}

/** Runs a soak's main and exits with its code (2 when it threw). */
export function runSoak(main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (error) => {
      console.error(`soak: ${error?.stack ?? error}`);
      process.exit(2);
    },
  );
}

export interface SoakArgs {
  total: number;
  concurrency: number;
  seed: number;
  portBase: number;
  /** When no more requests are sent (epoch ms). */
  deadline: number;
  /** Every option as given, the script's own ones included. */
  values: Record<string, string>;
}

/** The options both soaks take (--requests, --concurrency, --seed, --port-base, --max-minutes) and a script's own. */
export function parseSoakArgs(defaults: Record<string, string>): SoakArgs {
  const options = Object.fromEntries(
    Object.entries({ seed: "1", ...defaults }).map(([name, value]) => [name, { type: "string" as const, default: value }]),
  );
  const values = parseArgs({ options }).values as Record<string, string>;
  return {
    total: Number(values.requests),
    concurrency: Number(values.concurrency),
    seed: Number(values.seed),
    portBase: Number(values["port-base"]),
    deadline: Date.now() + Number(values["max-minutes"]) * 60_000,
    values,
  };
}

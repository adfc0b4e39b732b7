/**
 * Models on the project's TorchServe: `stageArchive` puts an archive into the
 * model store, `registerWatched` registers it and waits, watching the logs,
 * until its workers are ready or one of them fails to start.
 */
import fsp from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { listArchive, readArchiveFile } from "../archive/reader.ts";
import { MANIFEST_PATH } from "../archive/manifest.ts";
import type { RegisterOptions, TorchServeClient } from "./http.ts";
import { findWorkerFailure, LogWatcher } from "./logs.ts";
import { workPaths, type WorkPaths } from "./paths.ts";
import { ServerError } from "./torchserve-process.ts";
import { workerProgress } from "./workers.ts";

/** A worker that failed to start, with the cause from the model log. */
export class WorkerStartError extends Error {
  constructor(
    readonly modelName: string,
    readonly reason: string,
  ) {
    super(`the worker of model "${modelName}" failed to start:\n${reason}`);
    this.name = "WorkerStartError";
  }
}

/**
 * Puts an archive (a .mar, .tar.gz or folder anywhere) into the model store,
 * after checking it is safe, and returns the name to register it by.
 */
export async function stageArchive(archive: string, modelStore: string): Promise<{ url: string; modelName: string }> {
  const source = path.resolve(archive);
  await listArchive(source); // refuses unsafe entries before anything is copied
  const manifest = JSON.parse((await readArchiveFile(source, MANIFEST_PATH)).toString("utf8")) as { model?: { modelName?: string } };
  const modelName = manifest.model?.modelName;
  if (!modelName) throw new ServerError(`${archive}: its manifest names no model`, 2);
  const url = path.basename(source);
  const dest = path.join(modelStore, url);
  if (path.resolve(dest) !== source) {
    await fsp.rm(dest, { recursive: true, force: true });
    await fsp.cp(source, dest, { recursive: true, dereference: false });
  }
  return { url, modelName };
}

/**
 * The cause of a worker failure the logs show, once the log has it whole:
 * the worker's output reaches the log line by line, slowly on a busy
 * machine, so wait for the exception line and for the log to go quiet
 * (a Node stderr block may still follow), or for `settleMs`.
 */
// How long a failure already seen waits for its cause: the frontend's "Worker died." can precede the worker's own
// traceback in the model log by over 10 s on a busy machine (seen with npm test's concurrent lanes).
async function settledFailure(watcher: LogWatcher, modelName: string, settleMs = 30_000, quietMs = 500): Promise<string | undefined> {
  const deadline = Date.now() + settleMs;
  let log = watcher.since("model_log.log");
  let failure = findWorkerFailure(log, watcher.since("ts_log.log"), modelName);
  while (failure && Date.now() < deadline) {
    await sleep(failure.complete ? quietMs : 200);
    const next = watcher.since("model_log.log");
    const quiet = next === log;
    log = next;
    const wasComplete = failure.complete;
    failure = findWorkerFailure(log, watcher.since("ts_log.log"), modelName) ?? failure;
    if (wasComplete && failure.complete && quiet) break;
  }
  return failure?.cause;
}

interface RegisterWatch {
  /** Give up (and unregister) when the workers are not ready after this long (default 1 hour: a 70b model loads for minutes). */
  timeoutMs?: number;
  pollMs?: number;
  onProgress?: (message: string) => void;
}

interface RegisterResult {
  status: string;
  /** Seconds from the register call until every worker was ready. */
  seconds: number;
}

/**
 * Registers asynchronously (`synchronous=false`: TorchServe answers 202 at
 * once) and polls the model's description until its workers are ready,
 * watching the logs meanwhile. No frontend thread ever waits on the load:
 * a synchronous register abandoned after a failed load leaves a Netty thread
 * parked in `CompletableFuture.get` for good, and every request that lands on
 * it hangs. A worker that dies while loading ends the wait with the cause
 * from the model log, and the model is unregistered so its workers stop retrying.
 */
export async function registerWatched(
  client: TorchServeClient,
  options: RegisterOptions & { modelName: string },
  paths: WorkPaths = workPaths(),
  watch: RegisterWatch = {},
): Promise<RegisterResult> {
  const watcher = new LogWatcher(paths.logs);
  const started = Date.now();
  const timeoutMs = watch.timeoutMs ?? 3_600_000;
  await client.registerModel({ ...options, synchronous: false });
  let lastReport = started;
  for (;;) {
    const failure = await settledFailure(watcher, options.modelName);
    if (failure) {
      await unregisterQuietly(client, options.modelName);
      throw new WorkerStartError(options.modelName, failure);
    }
    const progress = await workerProgress(client, options.modelName);
    if (progress && progress.ready >= progress.wanted) {
      const status = `Model "${options.modelName}" Version: ${progress.version} registered with ${progress.wanted} initial workers`;
      return { status, seconds: (Date.now() - started) / 1000 };
    }
    const elapsed = Date.now() - started;
    if (elapsed > timeoutMs) {
      await unregisterQuietly(client, options.modelName);
      throw new WorkerStartError(
        options.modelName,
        `no worker was ready after ${Math.round(elapsed / 1000)} s (the model log has what it was doing): unregistered it`,
      );
    }
    if (Date.now() - lastReport >= 10_000) {
      lastReport = Date.now();
      watch.onProgress?.(
        `loading ${options.modelName}: ${progress?.ready ?? 0}/${progress?.wanted ?? "?"} worker(s) ready after ${Math.round(elapsed / 1000)} s`,
      );
    }
    await sleep(watch.pollMs ?? 250);
  }
}

async function unregisterQuietly(client: TorchServeClient, modelName: string): Promise<void> {
  await client.unregisterModel(modelName, undefined, AbortSignal.timeout(30_000)).catch(() => undefined);
}

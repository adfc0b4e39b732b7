/**
 * Starting and stopping the project's TorchServe, and talking to it.
 *
 * `startServer` spawns `torchserve --start` (found by ./torchserve-path.ts) with an argument list
 * (never a shell) in the working folder, with LOG_LOCATION, METRICS_LOCATION
 * and TEMP/TMPDIR pointing there, then waits for /ping. `stopServer` stops
 * the Java frontend and waits until it, its Python workers and their Node
 * children are all gone, escalating to SIGKILL for any that linger.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { readArchiveFile, listArchive } from "../archive/reader.ts";
import { MANIFEST_PATH } from "../archive/manifest.ts";
import { TorchServeClient, type RegisterOptions } from "./http.ts";
import { readKeyFile } from "./keys.ts";
import { LogWatcher, findWorkerFailure } from "./logs.ts";
import { allProcs, procInfo, processTree, procsMentioning, signal, stillRunning, TS_MAIN_CLASS, type ProcInfo } from "./procs.ts";
import { addressesFrom, isTrue, readProperties, withPortBase, type Properties, type ServerAddresses } from "./properties.ts";
import { workPaths, type WorkPaths } from "./paths.ts";
import { workerProgress } from "./workers.ts";
import { findTorchServe, TorchServeNotFoundError, venvOf } from "./torchserve-path.ts";
import { PACKAGE_ROOT } from "../package-root.ts";
import { metricsConfigProblem } from "../metrics/check-config.ts";

/** What `tsserve start` records in the working folder for the other commands. */
export interface ServerState {
  pid: number;
  start: string;
  tsConfig?: string;
  modelStore: string;
  addresses: ServerAddresses;
  startedAt: string;
}

/** A failure the user can act on (bad flags, nothing running, port taken): exit code 2 in the CLI. */
export class ServerError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = "ServerError";
  }
}

/** A worker that failed to start, with the cause from the model log. */
export class WorkerStartError extends Error {
  constructor(readonly modelName: string, readonly reason: string) {
    super(`the worker of model "${modelName}" failed to start:\n${reason}`);
    this.name = "WorkerStartError";
  }
}

export function readState(paths: WorkPaths = workPaths()): ServerState | undefined {
  try {
    return JSON.parse(fs.readFileSync(paths.state, "utf8")) as ServerState;
  } catch {
    return undefined;
  }
}

/** The running TorchServe frontend of this working folder, if any. */
export function runningServer(paths: WorkPaths = workPaths()): ProcInfo | undefined {
  const state = readState(paths);
  const candidates: number[] = [];
  if (state) candidates.push(state.pid);
  try {
    candidates.push(Number(fs.readFileSync(paths.pidFile, "utf8").trim()));
  } catch {
    // no pid file
  }
  for (const pid of candidates) {
    const info = Number.isInteger(pid) && pid > 0 ? procInfo(pid) : undefined;
    if (info && info.cmdline.includes(TS_MAIN_CLASS) && stillRunning(info)) return info;
  }
  return undefined;
}

function loadProps(tsConfig: string | undefined): Properties | undefined {
  return tsConfig && fs.existsSync(tsConfig) ? readProperties(tsConfig) : undefined;
}

/** A client for the project's TorchServe: addresses from what `start` recorded (or the config), keys from key_file.json. */
export function connect(paths: WorkPaths = workPaths()): TorchServeClient {
  const state = readState(paths);
  const addresses = state?.addresses ?? addressesFrom(loadProps(paths.defaultTsConfig));
  return new TorchServeClient({ addresses, keys: () => readKeyFile(paths.keyFile) });
}

function portOpen(address: string): Promise<boolean> {
  const url = new URL(address);
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  return new Promise((resolve) => {
    const socket = net.connect({ host: url.hostname, port });
    socket.setTimeout(1000);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("timeout", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(false));
  });
}

function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, "utf8").split(/\r?\n/).filter(Boolean).slice(-lines).join("\n");
  } catch {
    return "";
  }
}

export interface StartOptions {
  modelStore?: string;
  tsConfig?: string;
  /** NAME=ARCHIVE pairs (or bare archives) loaded at start. */
  models?: string[];
  timeoutMs?: number;
  onProgress?: (message: string) => void;
  paths?: WorkPaths;
  /** The torchserve launcher (`--torchserve`); else found as ./torchserve-path.ts says. */
  torchserve?: string;
  /** Listen on loopback from this port: inference, management +1, metrics +2, gRPC +10/+11 (a config written to the working folder). */
  portBase?: number;
}

/** TorchServe 0.12 listens for gRPC too (7070 and 7071 unless the config moves them). */
function grpcAddresses(props: Properties | undefined): Record<string, string> {
  const port = (key: string, fallback: number) => `http://127.0.0.1:${props?.get(key) ?? fallback}`;
  return { "gRPC inference": port("grpc_inference_port", 7070), "gRPC management": port("grpc_management_port", 7071) };
}

async function writePortBaseConfig(paths: WorkPaths, tsConfig: string | undefined, portBase: number): Promise<string> {
  const base = tsConfig ? await fsp.readFile(tsConfig, "utf8") : "";
  const file = path.join(paths.work, `config-port-${portBase}.properties`);
  await fsp.mkdir(paths.work, { recursive: true });
  await fsp.writeFile(file, `${withPortBase(base, portBase)}\n`);
  return file;
}

/** The environment TorchServe and its workers run with; `launcher` is the torchserve that runs (its folder goes first on PATH). */
export function serverEnv(paths: WorkPaths, base: NodeJS.ProcessEnv = process.env, launcher = path.join(paths.venvBin, "torchserve")): NodeJS.ProcessEnv {
  const venv = venvOf(launcher);
  return {
    ...base,
    PATH: [path.dirname(launcher), base.PATH].filter(Boolean).join(path.delimiter),
    ...(venv ? { VIRTUAL_ENV: venv } : {}),
    LOG_LOCATION: paths.logs,
    METRICS_LOCATION: paths.logs,
    // TEMP is TorchServe's java.io.tmpdir (unpacked archives, worker sockets); TMPDIR holds its pid file.
    TEMP: paths.tmp,
    TMPDIR: paths.tmp,
  };
}

export async function startServer(options: StartOptions = {}): Promise<ServerState> {
  const paths = options.paths ?? workPaths();
  const progress = options.onProgress ?? (() => {});
  const running = runningServer(paths);
  if (running) throw new ServerError(`TorchServe is already running (pid ${running.pid}); stop it with \`tsserve stop\``, 2);

  let tsConfig = options.tsConfig ? path.resolve(options.tsConfig) : fs.existsSync(paths.defaultTsConfig) ? paths.defaultTsConfig : undefined;
  if (options.tsConfig && !fs.existsSync(tsConfig!)) throw new ServerError(`--ts-config file not found: ${options.tsConfig}`, 2);
  if (options.portBase !== undefined) tsConfig = await writePortBaseConfig(paths, tsConfig, options.portBase);
  const props = loadProps(tsConfig);
  const metricsConfig = props?.get("metrics_config");
  const metricsProblem = metricsConfig ? metricsConfigProblem(path.resolve(metricsConfig)) : undefined;
  if (metricsProblem) throw new ServerError(`${metricsProblem} (TorchServe would start without metrics and fail every request)`, 2);
  const addresses = addressesFrom(props);
  const modelStore = path.resolve(options.modelStore ?? props?.get("model_store") ?? paths.defaultModelStore);
  if (!isTrue(props?.get("enable_model_api"))) {
    progress("warning: enable_model_api is not true in the TorchServe config; `tsserve register` will be refused");
  }

  for (const [api, address] of Object.entries({ ...addresses, ...grpcAddresses(props) })) {
    if (await portOpen(address)) {
      throw new ServerError(`the ${api} address ${address} is already in use (another TorchServe?): stop it, or start this one on other ports with --port-base`, 2);
    }
  }
  let torchserve: string;
  try {
    const found = findTorchServe({ explicit: options.torchserve, projectRoot: paths.root, packageRoot: PACKAGE_ROOT });
    torchserve = found.path;
    progress(`using ${torchserve} (${found.source})`);
  } catch (error) {
    if (error instanceof TorchServeNotFoundError) throw new ServerError(error.message, 2);
    throw error;
  }

  for (const dir of [paths.work, paths.logs, paths.tmp, modelStore]) await fsp.mkdir(dir, { recursive: true });
  // Keys of a previous run are stale: TorchServe writes new ones at start.
  await fsp.rm(paths.keyFile, { force: true });
  await fsp.rm(paths.state, { force: true });

  const args = ["--start", "--ncs", "--model-store", modelStore];
  if (tsConfig) args.push("--ts-config", tsConfig);
  if (options.models?.length) args.push("--models", ...options.models);
  const consoleLog = path.join(paths.logs, "torchserve-console.log");
  const out = fs.openSync(consoleLog, "a");
  const env = serverEnv(paths, process.env, torchserve);
  delete env.TS_CONFIG_FILE; // the launcher would prefer it over --ts-config
  const launcher = spawn(torchserve, args, { cwd: paths.work, env, stdio: ["ignore", out, out], detached: true });
  fs.closeSync(out);
  const code = await new Promise<number | null>((resolve, reject) => {
    launcher.once("error", reject);
    launcher.once("exit", (c) => resolve(c));
  });
  if (code !== 0) throw new ServerError(`torchserve --start exited with ${code}:\n${tail(consoleLog, 15)}`);

  let java: ProcInfo | undefined;
  const started = Date.now();
  const timeoutMs = options.timeoutMs ?? 120_000;
  const client = new TorchServeClient({ addresses, keys: () => readKeyFile(paths.keyFile) });
  let lastReport = 0;
  for (;;) {
    java ??= runningServer(paths);
    const elapsed = Date.now() - started;
    if (elapsed > 3000 && !runningServer(paths)) {
      throw new ServerError(`TorchServe exited while starting:\n${tail(path.join(paths.logs, "ts_log.log"), 20) || tail(consoleLog, 20)}`);
    }
    if (java) {
      try {
        const pong = await client.ping(AbortSignal.timeout(2000));
        if (pong.status) {
          const state: ServerState = { pid: java.pid, start: java.start, tsConfig, modelStore, addresses, startedAt: new Date().toISOString() };
          await fsp.writeFile(paths.state, JSON.stringify(state, null, 2) + "\n");
          progress(`TorchServe is up (pid ${java.pid}) after ${(elapsed / 1000).toFixed(1)}s: inference ${addresses.inference}, management ${addresses.management}`);
          return state;
        }
      } catch {
        // not listening yet
      }
    }
    if (elapsed > timeoutMs) {
      throw new ServerError(`TorchServe did not answer ${addresses.inference}/ping within ${timeoutMs / 1000}s:\n${tail(path.join(paths.logs, "ts_log.log"), 20)}`);
    }
    if (elapsed - lastReport >= 2000) {
      lastReport = elapsed;
      progress(`waiting for TorchServe to answer ${addresses.inference}/ping (${Math.round(elapsed / 1000)}s)`);
    }
    await sleep(250);
  }
}

/** Processes that belong to this working folder's TorchServe: the frontend's tree, plus orphans naming the folder. */
export function serverProcesses(paths: WorkPaths = workPaths(), java?: ProcInfo): ProcInfo[] {
  const procs = allProcs();
  const found = new Map<number, ProcInfo>();
  if (java && stillRunning(java)) for (const p of processTree(java.pid, procs)) found.set(p.pid, p);
  for (const p of procsMentioning(paths.tmp, procs)) {
    found.set(p.pid, p);
    for (const q of processTree(p.pid, procs)) found.set(q.pid, q);
  }
  return [...found.values()].filter(stillRunning);
}

export interface StopResult {
  wasRunning: boolean;
  /** Processes that needed SIGKILL. */
  killed: ProcInfo[];
}

/** How long processes the stopped frontend left behind get after SIGTERM before SIGKILL. */
const ORPHAN_GRACE_MS = 3000;

export async function stopServer(options: { paths?: WorkPaths; graceMs?: number; onProgress?: (m: string) => void } = {}): Promise<StopResult> {
  const paths = options.paths ?? workPaths();
  const progress = options.onProgress ?? (() => {});
  const graceMs = options.graceMs ?? 30_000;
  const java = runningServer(paths);
  const tracked = new Map<string, ProcInfo>();
  const track = (): void => {
    for (const p of serverProcesses(paths, java)) tracked.set(`${p.pid}:${p.start}`, p);
  };
  track();
  if (java) {
    progress(`stopping TorchServe (pid ${java.pid}) and ${tracked.size - 1} child process(es)`);
    signal(java, "SIGTERM");
  } else if (tracked.size > 0) {
    progress(`TorchServe is not running; ending ${tracked.size} leftover process(es)`);
    for (const p of tracked.values()) signal(p, "SIGTERM");
  }
  let deadline = Date.now() + graceMs;
  let orphansSignalled = false;
  while (Date.now() < deadline) {
    if (java && stillRunning(java)) track();
    const left = [...tracked.values()].filter(stillRunning);
    if (left.length === 0) break;
    // The frontend is gone and has not ended these (vLLM's engine processes outlive a killed worker): they get a short grace.
    if (java && !stillRunning(java) && !orphansSignalled) {
      orphansSignalled = true;
      for (const p of left) signal(p, "SIGTERM");
      deadline = Math.min(deadline, Date.now() + ORPHAN_GRACE_MS);
    }
    await sleep(200);
  }
  const killed = [...tracked.values()].filter(stillRunning);
  for (const p of killed) signal(p, "SIGKILL");
  const killDeadline = Date.now() + 5000;
  while (killed.some(stillRunning) && Date.now() < killDeadline) await sleep(100);
  const survivors = killed.filter(stillRunning);
  if (survivors.length) throw new ServerError(`processes survived SIGKILL: ${survivors.map((p) => p.pid).join(", ")}`);
  for (const file of [paths.keyFile, paths.pidFile, paths.state]) await fsp.rm(file, { force: true });
  return { wasRunning: java !== undefined, killed };
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

export interface RegisterWatch {
  /** Give up (and unregister) when the workers are not ready after this long (default 1 hour: a 70b model loads for minutes). */
  timeoutMs?: number;
  pollMs?: number;
  onProgress?: (message: string) => void;
}

export interface RegisterResult {
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
      throw new WorkerStartError(options.modelName, `no worker was ready after ${Math.round(elapsed / 1000)} s (the model log has what it was doing): unregistered it`);
    }
    if (Date.now() - lastReport >= 10_000) {
      lastReport = Date.now();
      watch.onProgress?.(`loading ${options.modelName}: ${progress?.ready ?? 0}/${progress?.wanted ?? "?"} worker(s) ready after ${Math.round(elapsed / 1000)} s`);
    }
    await sleep(watch.pollMs ?? 250);
  }
}

async function unregisterQuietly(client: TorchServeClient, modelName: string): Promise<void> {
  await client.unregisterModel(modelName, undefined, AbortSignal.timeout(30_000)).catch(() => undefined);
}

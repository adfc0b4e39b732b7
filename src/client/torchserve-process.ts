/**
 * The project's TorchServe server: starting it, finding it, stopping it.
 *
 * `startServer` spawns `torchserve --start` (found by ./torchserve-path.ts) with an argument list
 * (never a shell) in the working folder, with LOG_LOCATION, METRICS_LOCATION
 * and TEMP/TMPDIR pointing there, then waits for /ping. `stopServer` stops
 * the Java frontend and waits until it, its Python workers and their Node
 * children are all gone, escalating to SIGKILL for any that linger. Putting
 * models on it is ./model-registration.ts's job.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { TorchServeClient } from "./http.ts";
import { readKeyFile } from "./keys.ts";
import { allProcs, procInfo, processTree, procsMentioning, signal, stillRunning, TS_MAIN_CLASS, type ProcInfo } from "./procs.ts";
import { addressesFrom, isTrue, readProperties, withPortBase, type Properties, type ServerAddresses } from "./properties.ts";
import { workPaths, type WorkPaths } from "./paths.ts";
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
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = "ServerError";
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
    if (info?.cmdline.includes(TS_MAIN_CLASS) && stillRunning(info)) return info;
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

interface StartOptions {
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
function serverEnv(
  paths: WorkPaths,
  base: NodeJS.ProcessEnv = process.env,
  launcher = path.join(paths.venvBin, "torchserve"),
): NodeJS.ProcessEnv {
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

/** What a start runs with: the TorchServe config (if any) and what it says. */
interface ServerConfig {
  tsConfig: string | undefined;
  props: Properties | undefined;
  addresses: ServerAddresses;
  modelStore: string;
}

async function serverConfig(options: StartOptions, paths: WorkPaths, progress: (message: string) => void): Promise<ServerConfig> {
  let tsConfig = options.tsConfig
    ? path.resolve(options.tsConfig)
    : fs.existsSync(paths.defaultTsConfig)
      ? paths.defaultTsConfig
      : undefined;
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
  return { tsConfig, props, addresses, modelStore };
}

async function refuseTakenPorts(config: ServerConfig): Promise<void> {
  for (const [api, address] of Object.entries({ ...config.addresses, ...grpcAddresses(config.props) })) {
    if (await portOpen(address)) {
      throw new ServerError(
        `the ${api} address ${address} is already in use (another TorchServe?): stop it, or start this one on other ports with --port-base`,
        2,
      );
    }
  }
}

function locateTorchServe(explicit: string | undefined, paths: WorkPaths, progress: (message: string) => void): string {
  try {
    const found = findTorchServe({ explicit, projectRoot: paths.root, packageRoot: PACKAGE_ROOT });
    progress(`using ${found.path} (${found.source})`);
    return found.path;
  } catch (error) {
    if (error instanceof TorchServeNotFoundError) throw new ServerError(error.message, 2);
    throw error;
  }
}

/** Runs `torchserve --start`, which returns once the frontend is forked; returns the console log it wrote to. */
async function launch(torchserve: string, config: ServerConfig, models: string[] | undefined, paths: WorkPaths): Promise<string> {
  for (const dir of [paths.work, paths.logs, paths.tmp, config.modelStore]) await fsp.mkdir(dir, { recursive: true });
  // Keys of a previous run are stale: TorchServe writes new ones at start.
  await fsp.rm(paths.keyFile, { force: true });
  await fsp.rm(paths.state, { force: true });

  const args = ["--start", "--ncs", "--model-store", config.modelStore];
  if (config.tsConfig) args.push("--ts-config", config.tsConfig);
  if (models?.length) args.push("--models", ...models);
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
  return consoleLog;
}

/** Waits for the frontend to answer /ping, then records it in the working folder. */
async function waitForPing(
  config: ServerConfig,
  consoleLog: string,
  timeoutMs: number,
  paths: WorkPaths,
  progress: (message: string) => void,
): Promise<ServerState> {
  const { addresses } = config;
  let java: ProcInfo | undefined;
  const started = Date.now();
  const client = new TorchServeClient({ addresses, keys: () => readKeyFile(paths.keyFile) });
  let lastReport = 0;
  for (;;) {
    java ??= runningServer(paths);
    const elapsed = Date.now() - started;
    if (elapsed > 3000 && !runningServer(paths)) {
      throw new ServerError(`TorchServe exited while starting:\n${tail(path.join(paths.logs, "ts_log.log"), 20) || tail(consoleLog, 20)}`);
    }
    if (java && (await answersPing(client))) {
      const state: ServerState = {
        pid: java.pid,
        start: java.start,
        tsConfig: config.tsConfig,
        modelStore: config.modelStore,
        addresses,
        startedAt: new Date().toISOString(),
      };
      await fsp.writeFile(paths.state, `${JSON.stringify(state, null, 2)}\n`);
      progress(
        `TorchServe is up (pid ${java.pid}) after ${(elapsed / 1000).toFixed(1)}s: inference ${addresses.inference}, management ${addresses.management}`,
      );
      return state;
    }
    if (elapsed > timeoutMs) {
      throw new ServerError(
        `TorchServe did not answer ${addresses.inference}/ping within ${timeoutMs / 1000}s:\n${tail(path.join(paths.logs, "ts_log.log"), 20)}`,
      );
    }
    if (elapsed - lastReport >= 2000) {
      lastReport = elapsed;
      progress(`waiting for TorchServe to answer ${addresses.inference}/ping (${Math.round(elapsed / 1000)}s)`);
    }
    await sleep(250);
  }
}

async function answersPing(client: TorchServeClient): Promise<boolean> {
  try {
    return Boolean((await client.ping(AbortSignal.timeout(2000))).status);
  } catch {
    return false; // not listening yet
  }
}

export async function startServer(options: StartOptions = {}): Promise<ServerState> {
  const paths = options.paths ?? workPaths();
  const progress = options.onProgress ?? (() => {});
  const running = runningServer(paths);
  if (running) throw new ServerError(`TorchServe is already running (pid ${running.pid}); stop it with \`tsserve stop\``, 2);
  const config = await serverConfig(options, paths, progress);
  await refuseTakenPorts(config);
  const torchserve = locateTorchServe(options.torchserve, paths, progress);
  const consoleLog = await launch(torchserve, config, options.models, paths);
  return waitForPing(config, consoleLog, options.timeoutMs ?? 120_000, paths, progress);
}

/** Processes that belong to this working folder's TorchServe: the frontend's tree, plus orphans naming the folder. */
function serverProcesses(paths: WorkPaths = workPaths(), java?: ProcInfo): ProcInfo[] {
  const procs = allProcs();
  const found = new Map<number, ProcInfo>();
  if (java && stillRunning(java)) for (const p of processTree(java.pid, procs)) found.set(p.pid, p);
  for (const p of procsMentioning(paths.tmp, procs)) {
    found.set(p.pid, p);
    for (const q of processTree(p.pid, procs)) found.set(q.pid, q);
  }
  return [...found.values()].filter(stillRunning);
}

interface StopResult {
  wasRunning: boolean;
  /** Processes that needed SIGKILL. */
  killed: ProcInfo[];
}

/** How long processes the stopped frontend left behind get after SIGTERM before SIGKILL. */
const ORPHAN_GRACE_MS = 3000;

export async function stopServer(
  options: { paths?: WorkPaths; graceMs?: number; onProgress?: (m: string) => void } = {},
): Promise<StopResult> {
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

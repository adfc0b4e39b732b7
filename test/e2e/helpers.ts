import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { workPaths, type WorkPaths } from "../../src/client/paths.ts";
import { allProcs, stillRunning, type ProcInfo } from "../../src/client/procs.ts";
import { loopbackProperties } from "../../src/client/properties.ts";
import SEED_REQUEST from "../fixtures/seed-request.json" with { type: "json" };

export { SEED_REQUEST };

export const ROOT = path.resolve(import.meta.dirname, "../..");
export const CLI = path.join(ROOT, "bin", "tsserve.mjs");
export const TINY_HANDLER = path.join(ROOT, "handlers", "llama-2-7b-chat.ts");
export const TINY_CONFIG = path.join(ROOT, "configs", "tiny-llama-2-chat.yaml");

/** What AgentInstruct's HELM client sends. */
export const HELM_REQUEST = {
  model: "tiny-llama-2-chat",
  prompt: "Question: What is 2 + 2?\nAnswer:",
  temperature: 0,
  n: 1,
  max_tokens: 16,
  best_of: 1,
  logprobs: 1,
  stop: null,
  echo: false,
  top_p: 1,
  top_k: 1,
};

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The command outlived timeoutMs: its process group was killed. */
  timedOut: boolean;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** How long output still held open by a process the command left behind is read after it exits. */
const DRAIN_AFTER_EXIT_MS = 2_000;
const KILL_GRACE_MS = 5_000;

/**
 * Runs a command (an argument list, no shell) in a process group of its own. Past `timeoutMs` the
 * whole group gets SIGTERM, then SIGKILL, so no grandchild outlives it. The result comes when the
 * command exits, whoever still holds its output: spawnSync waited for every holder, with the test
 * runner's timers blocked, and a CI run hung for an hour in package.test.ts that way.
 */
export function run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const { cwd = ROOT, env = process.env, timeoutMs = 180_000 } = options;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    const killGroup = (signal: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        // the group is gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup("SIGTERM");
      setTimeout(() => killGroup("SIGKILL"), KILL_GRACE_MS).unref();
    }, timeoutMs);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      const finish = () => {
        clearTimeout(drain);
        child.stdout.destroy();
        child.stderr.destroy();
        resolve({ code, signal, stdout, stderr, timedOut });
      };
      const drain = setTimeout(finish, DRAIN_AFTER_EXIT_MS);
      child.once("close", finish);
    });
  });
}

/** Runs the tsserve CLI as a user would. */
export function cli(args: string[], timeoutMs = 180_000, env: NodeJS.ProcessEnv = process.env): Promise<RunResult> {
  return run(process.execPath, [CLI, ...args], { timeoutMs, env });
}

function cwdOf(pid: number): string | undefined {
  try {
    return fs.readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return undefined;
  }
}

/**
 * Every live TorchServe frontend, Python worker, or Node handler process of one
 * working folder (this checkout's by default): those that name its tmp folder
 * (workers' sockets, unpacked archives) or run in it. TorchServes of other
 * working folders (suites or sessions running beside this one) are not counted.
 */
export function leftovers(paths: WorkPaths = workPaths()): string[] {
  return leftoverProcs(paths).map((p) => `${p.pid} ${p.cmdline.slice(0, 160)}`);
}

export function leftoverProcs(paths: WorkPaths = workPaths()): ProcInfo[] {
  return allProcs()
    .filter(stillRunning)
    .filter((p) => {
      if (p.pid === process.pid) return false;
      if (p.cmdline.includes(paths.tmp)) return true;
      const serving = p.cmdline.includes("org.pytorch.serve.ModelServer") || p.cmdline.includes("model_service_worker.py");
      const cwd = serving ? cwdOf(p.pid) : undefined;
      return cwd !== undefined && (cwd === paths.work || cwd.startsWith(paths.work + path.sep));
    });
}

/** Port base of the suites' own TorchServes (servers.ts puts the shared ones above it): inference = base, management = base + 1, metrics = base + 2, gRPC = base + 10, 11. Not 8080, where a contributor's own TorchServe listens. */
export const E2E_PORT_BASE = Number(process.env.TSSERVE_E2E_PORT_BASE ?? 28080);

export interface IsolatedServer {
  /** The suite's own working folder (.work/e2e-NAME): logs, keys, tmp, model store. */
  paths: WorkPaths;
  /** process.env with TSSERVE_WORK_DIR set, for the CLI. */
  env: NodeJS.ProcessEnv;
  tsConfig: string;
  modelStore: string;
  scratch: string;
  ports: { inference: number; management: number; metrics: number };
}

/**
 * A suite's own frontend runs on the JIT's first tier and the serial collector: a JVM that lives for one suite
 * spent half its CPU compiling for a peak it never reached (a start, a load and 40 requests: 3.3-3.4 CPU-s of
 * java by default, 1.7-2.6 so). The run's shared servers keep the full JIT: they carry megabyte frames for ten
 * minutes (worker-socket.test.ts took 180 s with it, 199-232 s without).
 */
const TEST_JVM_ARGS = "vmargs=-XX:TieredStopAtLevel=1 -XX:+UseSerialGC";

/**
 * A fresh working folder and TorchServe config for one suite, on ports from
 * TSSERVE_E2E_PORT_BASE (default 28080), so that suites and sessions running at
 * the same time on other bases never meet. `properties` are extra config lines.
 */
export function isolatedServer(name: string, properties: string[] = [], portBase = E2E_PORT_BASE): IsolatedServer {
  const work = path.join(ROOT, ".work", `e2e-${name}`);
  const env = { ...process.env, TSSERVE_WORK_DIR: work };
  const paths = workPaths(env);
  fs.rmSync(work, { recursive: true, force: true });
  const modelStore = path.join(work, "model-store");
  const scratch = path.join(work, "scratch");
  fs.mkdirSync(modelStore, { recursive: true });
  fs.mkdirSync(scratch, { recursive: true });
  const ports = { inference: portBase, management: portBase + 1, metrics: portBase + 2 };
  const tsConfig = writeFile(path.join(work, "config.properties"), loopbackProperties(portBase, [...properties, TEST_JVM_ARGS]));
  return { paths, env, tsConfig, modelStore, scratch, ports };
}

/** The tiny model's config with `settings` (top-level keys or `handler.KEY`) set, written to `file`. */
export function tinyConfig(file: string, settings: Record<string, string | number> = {}): string {
  return configWith(TINY_CONFIG, file, settings);
}

/** SmolLM2's shipped config (engine: vllm). */
export const SMOLLM2_CONFIG = path.join(ROOT, "configs", "smollm2-135m-instruct.yaml");

/** What suites add to a vLLM config: eager mode (a third of the compiled start-up) and a small KV cache. */
export const VLLM_TEST_SETTINGS = { "handler.enforce_eager": "true", "handler.kv_cache_mb": 512 };

/**
 * A shipped config with `settings` (top-level keys or `handler.KEY`) set, written
 * to `file`; its model_path made absolute, so that the copy loads the same model.
 */
export function configWith(source: string, file: string, settings: Record<string, string | number> = {}): string {
  let yaml = fs
    .readFileSync(source, "utf8")
    .replace(/model_path: "?([^"\n]*)"?/, (_, p: string) => `model_path: "${path.resolve(path.dirname(source), p)}"`);
  for (const [key, value] of Object.entries(settings)) {
    const inner = key.startsWith("handler.") ? key.slice("handler.".length) : undefined;
    if (inner !== undefined && new RegExp(`^  ${inner}: `, "m").test(yaml)) {
      yaml = yaml.replace(new RegExp(`^  ${inner}: .*$`, "m"), `  ${inner}: ${value}`);
    } else if (inner !== undefined) {
      yaml = yaml.replace(/^handler:\n/m, `handler:\n  ${inner}: ${value}\n`);
    } else if (new RegExp(`^${key}: `, "m").test(yaml)) {
      yaml = yaml.replace(new RegExp(`^${key}: .*$`, "m"), `${key}: ${value}`);
    } else {
      yaml = `${key}: ${value}\n${yaml}`;
    }
  }
  return writeFile(file, yaml);
}

export function writeFile(file: string, text: string): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

/**
 * A copy of the shim package with test/fixtures/shim/fault_oom.py imported by
 * its __init__: archives built with it (ArchiveHooks.shimPackage) answer a
 * prompt holding "<<tsserve-test-oom>>" with a simulated CUDA out-of-memory.
 * Only tests build such archives; the shipped shim has no fault hooks.
 */
export const OOM_MARKER = "<<tsserve-test-oom>>";
export function faultShimPackage(dir: string): string {
  const dest = path.join(dir, "tsserve_shim");
  fs.rmSync(dest, { recursive: true, force: true });
  fs.cpSync(path.join(ROOT, "python_shim", "tsserve_shim"), dest, { recursive: true, filter: (src) => !src.includes("__pycache__") });
  fs.copyFileSync(path.join(ROOT, "test", "fixtures", "shim", "fault_oom.py"), path.join(dest, "fault_oom.py"));
  fs.appendFileSync(path.join(dest, "__init__.py"), "\nfrom . import fault_oom  # noqa: E402,F401 - test only\n");
  return dest;
}

/** The Node child (handler.mjs) of a worker process, if it runs. */
export function nodeChildOf(workerPid: number): ProcInfo | undefined {
  return allProcs().find((p) => p.ppid === workerPid && p.cmdline.includes("handler.mjs") && stillRunning(p));
}

export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Runs one of the Python client scripts beside these tests with the venv's Python and resolves with the
 * JSON of its `REPORT ` line; rejects when it exits non-zero or reports nothing, and kills it after `timeoutMs`.
 */
export function runPythonReport<T>(script: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(ROOT, ".venv", "bin", "python"), [path.join(ROOT, "test", "e2e", script), ...args], { cwd: ROOT, env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      const line = stdout.split("\n").find((l) => l.startsWith("REPORT "));
      if (code !== 0 || !line) reject(new Error(`${script} ${args[0] ?? ""} exited ${code}\n${stderr.slice(-4000)}`));
      else resolve(JSON.parse(line.slice("REPORT ".length)) as T);
    });
  });
}

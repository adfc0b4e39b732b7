/**
 * The servers the side-by-side benchmarks start on this machine, one at a time: a TorchServe of tsserve
 * archives (each model's handler and YAML) on loopback, and vLLM's own OpenAI server. Each gives its base
 * URL, the headers a request needs, how long it took to serve, and a stop.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { createArchive } from "../src/archive/archive.ts";
import { registerWatched } from "../src/client/model-registration.ts";
import { workPaths, type WorkPaths } from "../src/client/paths.ts";
import { loopbackProperties } from "../src/client/properties.ts";
import { connect, runningServer, startServer, stopServer } from "../src/client/torchserve-process.ts";

export const ROOT = path.resolve(import.meta.dirname, "..");
export const SMOLLM2_PATH = path.join(ROOT, ".cache", "smollm2-135m-instruct");
const PYTHON = path.join(ROOT, ".venv", "bin", "python");

export interface Served {
  /** http://127.0.0.1:PORT */
  base: string;
  headers: Record<string, string>;
  /** Seconds from start (vLLM's server) or from registration (tsserve) until it answers. */
  load_s: number;
  stop(): Promise<void>;
}

export interface TsserveModel {
  name: string;
  handler: string;
  /** The model config's YAML text. */
  config: string;
}

/** SmolLM2's shipped config with `model_path` set to the local checkpoint and `engine` (and its extra lines) replaced. */
export function smollm2Config(engineLines: string): string {
  return fs
    .readFileSync(path.join(ROOT, "configs", "smollm2-135m-instruct.yaml"), "utf8")
    .replace(/model_path: .*/, `model_path: "${SMOLLM2_PATH}"`)
    .replace(/engine: .*/, engineLines);
}

/** A fresh TorchServe under .work/<work> serving these models (registered one after another; load_s is all of them). */
export async function serveTsserve(work: string, port: number, models: TsserveModel[]): Promise<Served> {
  const folder = path.join(ROOT, ".work", work);
  fs.rmSync(folder, { recursive: true, force: true });
  const paths: WorkPaths = workPaths({ ...process.env, TSSERVE_WORK_DIR: folder });
  const modelStore = path.join(folder, "model-store");
  fs.mkdirSync(path.join(folder, "scratch"), { recursive: true });
  fs.mkdirSync(modelStore, { recursive: true });
  const tsConfig = path.join(folder, "config.properties");
  fs.writeFileSync(tsConfig, loopbackProperties(port));
  for (const model of models) {
    const configFile = path.join(folder, "scratch", `${model.name}.yaml`);
    fs.writeFileSync(configFile, model.config);
    await createArchive({ modelName: model.name, version: "1.0", handler: model.handler, configFile, exportPath: modelStore, force: true });
  }
  const stop = async () => {
    if (runningServer(paths)) await stopServer({ paths });
  };
  try {
    await startServer({ paths, tsConfig, modelStore });
    const started = performance.now();
    for (const model of models) {
      await registerWatched(connect(paths), { url: `${model.name}.mar`, modelName: model.name, initialWorkers: 1 }, paths);
    }
    const load_s = (performance.now() - started) / 1000;
    const key = JSON.parse(fs.readFileSync(paths.keyFile, "utf8")).inference.key as string;
    return { base: `http://127.0.0.1:${port}`, headers: { Authorization: `Bearer ${key}` }, load_s, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** vLLM's own OpenAI server (`vllm.entrypoints.openai.api_server`) on `modelPath`, float32, with this KV cache. */
export async function serveVllm(modelPath: string, port: number, kvCacheMb: number): Promise<Served> {
  const started = performance.now();
  const args = ["-m", "vllm.entrypoints.openai.api_server", "--model", modelPath, "--dtype", "float32"];
  args.push("--host", "127.0.0.1", "--port", String(port), "--kv-cache-memory-bytes", String(kvCacheMb * 2 ** 20), "--disable-log-stats");
  const child: ChildProcess = spawn(PYTHON, args, { stdio: ["ignore", "ignore", "pipe"], detached: true });
  let log = "";
  child.stderr!.on("data", (c) => (log = (log + c).slice(-4000)));
  const stop = () => stopGroup(child);
  try {
    while (!(await healthy(`http://127.0.0.1:${port}/health`))) {
      if (child.exitCode !== null) throw new Error(`vLLM's server exited (${child.exitCode}):\n${log}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    return { base: `http://127.0.0.1:${port}`, headers: {}, load_s: (performance.now() - started) / 1000, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

const healthy = (url: string) =>
  fetch(url).then(
    (r) => r.ok,
    () => false,
  );

/** SIGTERM to the server's process group, SIGKILL to what is left 3 s later. */
async function stopGroup(child: ChildProcess): Promise<void> {
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, name);
    } catch {
      /* gone */
    }
  };
  signal("SIGTERM");
  await new Promise((r) => setTimeout(r, 3000));
  signal("SIGKILL");
}

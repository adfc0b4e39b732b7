// The TorchServes the end-to-end suites run on.
//
// - `withServer(name)`: a TorchServe of the suite's own (faults, kserve, bad input, ...), started
//   before its tests and stopped after them with nothing left behind, in `.work/e2e-NAME` on the
//   own-server ports. Such suites run one at a time (the e2e project is not file-parallel).
// - `sharedServer(engine)` + `sharedModel(...)`: one TorchServe per engine for the suites that only
//   need a served model. The first suite that asks starts it; it stays up for the rest of the run
//   and `global-setup.ts` stops it. Each suite registers its own model names, except the one vLLM
//   model every vLLM suite shares (vLLM is loaded once per run).
//
// Ports come from TSSERVE_E2E_PORT_BASE (default 28080, away from a contributor's TorchServe on 8080):
// own servers on the base, the transformers server on base + 20, the vLLM server on base + 40
// (each takes 12 ports: inference, management +1, metrics +2, gRPC +10/+11).
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, expect } from "vitest";
import { createArchive, type ArchiveHooks } from "../../src/archive/archive.ts";
import { bundleHandler } from "../../src/bundle/bundle.ts";
import { BUNDLE_FILE, BUNDLE_MAP_FILE } from "../../src/bundle/bundle-files.ts";
import { liveBundleFolders, writeBundle } from "../../src/client/hot-swap.ts";
import type { RegisterOptions, TorchServeClient } from "../../src/client/http.ts";
import { workPaths } from "../../src/client/paths.ts";
import { processTree, stillRunning, type ProcInfo } from "../../src/client/procs.ts";
import { registerWatched } from "../../src/client/model-registration.ts";
import { connect, runningServer, startServer, stopServer } from "../../src/client/torchserve-process.ts";
import { loopbackProperties } from "../../src/client/properties.ts";
import {
  configWith,
  E2E_PORT_BASE,
  isolatedServer,
  leftovers,
  ROOT,
  SMOLLM2_CONFIG,
  VLLM_TEST_SETTINGS,
  type IsolatedServer,
} from "./helpers.ts";

export type Engine = "transformers" | "vllm";

const SHARED_OFFSET: Record<Engine, number> = { transformers: 20, vllm: 40 };

/** The working folder of an engine's shared TorchServe. */
export const sharedWork = (engine: Engine): string => path.join(ROOT, ".work", `e2e-shared-${engine}`);

export interface RunningServer extends IsolatedServer {
  client: TorchServeClient;
}

export interface OwnServerOptions {
  /** Extra config.properties lines. */
  properties?: string[];
  /** Start TorchServe in beforeAll (default); false: the suite starts it itself (e.g. through the CLI). */
  start?: boolean;
}

/**
 * A TorchServe of the suite's own: its folder and config at once, started in beforeAll (unless
 * `start: false`), stopped in afterAll, which then checks that no process of it is left. The
 * returned object is filled in by beforeAll (`client`).
 */
export function withServer(name: string, options: OwnServerOptions = {}): RunningServer {
  const server = isolatedServer(name, options.properties, E2E_PORT_BASE) as RunningServer;
  beforeAll(async () => {
    if (options.start !== false) await startServer({ paths: server.paths, tsConfig: server.tsConfig, modelStore: server.modelStore });
    server.client = connect(server.paths);
  }, 240_000);
  afterAll(async () => {
    if (runningServer(server.paths)) await stopServer({ paths: server.paths });
    expect(leftovers(server.paths)).toEqual([]);
  }, 120_000);
  return server;
}

/** An engine's shared TorchServe: started by the first suite that asks, kept for the run. */
export async function sharedServer(engine: Engine): Promise<RunningServer> {
  const work = sharedWork(engine);
  const env = { ...process.env, TSSERVE_WORK_DIR: work };
  const paths = workPaths(env);
  const portBase = E2E_PORT_BASE + SHARED_OFFSET[engine];
  const server: RunningServer = {
    paths,
    env,
    tsConfig: path.join(work, "config.properties"),
    modelStore: path.join(work, "model-store"),
    scratch: path.join(work, "scratch"),
    ports: { inference: portBase, management: portBase + 1, metrics: portBase + 2 },
    client: connect(paths),
  };
  if (!runningServer(paths)) {
    fs.rmSync(work, { recursive: true, force: true });
    for (const dir of [server.modelStore, server.scratch]) fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(server.tsConfig, loopbackProperties(portBase)); // the JIT in full: megabyte frames all run long
    await startServer({ paths, tsConfig: server.tsConfig, modelStore: server.modelStore });
    server.client = connect(paths);
  }
  return server;
}

export interface ModelSpec {
  name: string;
  handler: string;
  configFile: string;
  workers?: number;
  /** More of the register call (batchSize, maxBatchDelay, ...). */
  register?: Partial<RegisterOptions>;
  hooks?: ArchiveHooks;
}

/** Registers the model on the server unless it is there already (a suite that ran earlier did). */
export async function sharedModel(server: RunningServer, spec: ModelSpec): Promise<void> {
  const registered = await server.client.describeModel(spec.name).then(
    () => true,
    () => false,
  );
  if (registered) return;
  await createArchive(
    {
      modelName: spec.name,
      version: "1.0",
      handler: spec.handler,
      configFile: spec.configFile,
      exportPath: server.modelStore,
      force: true,
    },
    spec.hooks ?? {},
  );
  await registerWatched(
    server.client,
    { ...spec.register, url: `${spec.name}.mar`, modelName: spec.name, initialWorkers: spec.workers ?? 1 },
    server.paths,
  );
}

/** The one vLLM model of the run: SmolLM2 with its shipped handler and config (eager, a small KV cache, one torch thread). */
export const SMOLLM2_VLLM = "smollm2";

export async function smollm2OnVllm(): Promise<RunningServer> {
  const server = await sharedServer("vllm");
  const configFile = configWith(SMOLLM2_CONFIG, path.join(server.scratch, `${SMOLLM2_VLLM}.yaml`), {
    ...VLLM_TEST_SETTINGS,
    "handler.cpu_threads": 1,
  });
  await sharedModel(server, { name: SMOLLM2_VLLM, handler: path.join(ROOT, "handlers", "smollm2-135m-instruct.ts"), configFile });
  return server;
}

/** How soon vLLM's engine processes must be gone once TorchServe has ended their worker (issue 33). */
export const VLLM_GONE_WITHIN_MS = 10_000;

/**
 * Unregisters the run's vLLM model, as `tsserve unregister` does (TorchServe ends the worker with
 * SIGKILL), and returns vLLM's processes of it (`VLLM::...`) still running VLLM_GONE_WITHIN_MS later.
 */
export async function unregisterVllmModel(): Promise<ProcInfo[]> {
  const paths = workPaths({ ...process.env, TSSERVE_WORK_DIR: sharedWork("vllm") });
  const java = runningServer(paths);
  if (!java) return [];
  const vllm = processTree(java.pid).filter((p) => p.cmdline.startsWith("VLLM::"));
  await connect(paths)
    .unregisterModel(SMOLLM2_VLLM)
    .catch(() => undefined); // not registered: no suite asked for it
  const deadline = Date.now() + VLLM_GONE_WITHIN_MS;
  while (vllm.some(stillRunning) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
  return vllm.filter(stillRunning);
}

/** Stops an engine's shared TorchServe (global teardown); the processes still left, if any. */
export async function stopShared(engine: Engine): Promise<string[]> {
  const paths = workPaths({ ...process.env, TSSERVE_WORK_DIR: sharedWork(engine) });
  if (runningServer(paths)) await stopServer({ paths });
  return leftovers(paths);
}

/**
 * Serves `handler` on a registered model for the suite's tests, the model staying loaded (the swap
 * `tsserve register --replace` and `tsserve dev` make, client/hot-swap.ts); afterAll puts the
 * model's own handler back. How the vLLM suites run another handler on the run's one vLLM model.
 */
export function withHandler(server: () => RunningServer, modelName: string, handler: string): void {
  let saved: { folder: string; bundle: Buffer; map: Buffer | undefined }[] = [];
  beforeAll(async () => {
    const folders = await liveBundleFolders(server().client, modelName);
    if (folders.length === 0) throw new Error(`${modelName} has no running worker to swap ${handler} into`);
    saved = folders.map((folder) => ({
      folder,
      bundle: fs.readFileSync(path.join(folder, BUNDLE_FILE)),
      map: fs.existsSync(path.join(folder, BUNDLE_MAP_FILE)) ? fs.readFileSync(path.join(folder, BUNDLE_MAP_FILE)) : undefined,
    }));
    const built = await bundleHandler({ handler, outDir: fs.mkdtempSync(path.join(server().scratch, "swap-")) });
    const [bundle, map] = [fs.readFileSync(built.bundlePath), fs.readFileSync(built.mapPath)];
    for (const folder of folders) await writeBundle(folder, bundle, map);
  }, 120_000);
  afterAll(async () => {
    for (const { folder, bundle, map } of saved) await writeBundle(folder, bundle, map);
  });
}

/**
 * `tsserve dev`: a handler and its config served on the local TorchServe,
 * live while you edit. On each save of one of the handler's sources the
 * handler is rebundled and written over the bundle the worker runs; the
 * shim's bridge starts a Node child on it at the next request (see
 * client/hot-swap.ts), so the model stays loaded. A change to the config
 * reloads the model (the worker hands the config to the handler at load).
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createArchive } from "../../archive/archive.ts";
import { bundleHandler } from "../../bundle/bundle.ts";
import { loadHandlerConfigSchema } from "../../bundle/handler-config-schema.ts";
import type { TorchServeClient } from "../../client/http.ts";
import { configChanges, writeBundle } from "../../client/hot-swap.ts";
import { workPaths, type WorkPaths } from "../../client/paths.ts";
import { registerWatched, WorkerStartError } from "../../client/model-registration.ts";
import { connect, readState, runningServer, startServer, stopServer } from "../../client/torchserve-process.ts";
import { ArchiveInputError } from "../../config/input-error.ts";
import { readModelConfig, validateModelConfig } from "../../config/model-config-file.ts";
import { readKeyFile } from "../../client/keys.ts";
import { INSPECTOR_URL_ENV } from "../../inspector/journal.ts";
import { startInspector, type InspectorServer } from "../../inspector/server.ts";
import { PACKAGE_ROOT } from "../../package-root.ts";
import { UsageError, type Command } from "../command.ts";
import { parsePortBase } from "./start.ts";

const usage = `Usage: tsserve dev --handler handlers/<file>.ts -c <model-config.yaml> [--model-name NAME] [--port-base P] [--no-inspector]

Serves the handler on the local TorchServe (started if it is not running, and stopped again
on Ctrl-C) and watches its sources. On every save the handler is rebundled and the running
worker swaps its Node child to the new bundle at the next request: the model stays loaded,
a request in flight finishes on the code it started with. A change to the config file
reloads the model. The terminal says which happened and how long it took.

The inspector, a page on a loopback port (its link, with TorchServe's inference key, is printed
at start), sends requests through a form and shows what each became at every stage: the
prompts, their tokens, the generated tokens and their logprobs, timings, the answer.

Options:
  --handler FILE          the TypeScript handler module
  -c, --config-file FILE  its model-config.yaml
  --model-name NAME       name to serve it under (default: the handler's file name)
  --port-base P           for a TorchServe started here: ports as \`tsserve start --port-base\`
  --no-inspector          serve no inspector page (the handler's Node child then records nothing)`;

/** What runs now: the config it was loaded with, and where its store folder is. */
interface Served {
  config: unknown;
  loadedAt: number;
}

interface DevSession {
  handler: string;
  configFile: string;
  modelName: string;
  paths: WorkPaths;
  client: TorchServeClient;
  modelStore: string;
  say: (message: string) => void;
  inspector?: InspectorServer;
}

function elapsed(since: number): string {
  const ms = Date.now() - since;
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

async function isRegistered(client: TorchServeClient, modelName: string): Promise<boolean> {
  const { models } = await client.listModels();
  return models.some((model) => model.modelName === modelName);
}

/** Archives the handler into the model store as a folder (used in place by TorchServe) and registers it. */
async function loadModel(session: DevSession): Promise<Served> {
  const { client, modelName } = session;
  const started = Date.now();
  if (await isRegistered(client, modelName)) await client.unregisterModel(modelName);
  const archived = await createArchive(
    {
      modelName,
      version: "1.0",
      handler: session.handler,
      configFile: session.configFile,
      exportPath: session.modelStore,
      archiveFormat: "no-archive",
      force: true,
    },
    {},
  );
  for (const warning of archived.warnings) session.say(`warning: ${warning}`);
  const { raw } = await readModelConfig(session.configFile);
  await registerWatched(client, { url: modelName, modelName, initialWorkers: 1 }, session.paths, { onProgress: session.say });
  session.say(`${modelName} loaded in ${elapsed(started)}: ${session.client.addresses.inference}/predictions/${modelName}`);
  return { config: raw, loadedAt: Date.now() };
}

/** Rebundles the handler and writes it over the bundle of every running worker; the model stays loaded. */
async function swapHandler(session: DevSession, changed: string): Promise<string[]> {
  const started = Date.now();
  const outDir = await fsp.mkdtemp(path.join(os.tmpdir(), "tsserve-dev-"));
  try {
    const built = await bundleHandler({ handler: session.handler, outDir });
    const { raw } = await readModelConfig(session.configFile);
    validateModelConfig(raw, await loadHandlerConfigSchema(session.handler, built.bundlePath), session.configFile, session.handler);
    const [bundle, map] = await Promise.all([fsp.readFile(built.bundlePath), fsp.readFile(built.mapPath)]);
    // A no-archive folder is used in place: TorchServe's model folder links to it, and its workers run its handler.mjs.
    await writeBundle(path.join(session.modelStore, session.modelName), bundle, map);
    const shown = path.relative(process.cwd(), changed) || changed;
    session.say(
      `${shown} changed: handler rebundled and swapped in ${elapsed(started)}; the model stayed loaded (the next request runs the new code)`,
    );
    session.inspector?.swapped(shown);
    return built.inputs;
  } finally {
    await fsp.rm(outDir, { recursive: true, force: true });
  }
}

/** The handler's own sources: its bundle's inputs outside node_modules. */
function ownSources(inputs: Iterable<string>): string[] {
  return [...inputs].filter((input) => !input.split(path.sep).includes("node_modules")).map((input) => path.resolve(input));
}

/** The folders to watch: those of the handler's own sources and of the config. */
function watchedFolders(inputs: readonly string[], configFile: string): Set<string> {
  return new Set([...ownSources(inputs), path.resolve(configFile)].map((file) => path.dirname(file)));
}

async function runDev(session: DevSession): Promise<void> {
  let served = await loadModel(session);
  if (session.inspector) session.say(`inspector: ${session.inspector.pageUrl()}`);
  let inputs = new Set((await bundleInputs(session.handler)).map((f) => path.resolve(f)));
  session.inspector?.setSources(ownSources(inputs));
  const configPath = path.resolve(session.configFile);
  let pending = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let busy: Promise<void> = Promise.resolve();

  const react = async (files: Set<string>): Promise<void> => {
    try {
      if (files.has(configPath)) {
        const { raw } = await readModelConfig(session.configFile);
        const changes = configChanges(served.config, raw);
        if (changes.length === 0) return;
        session.say(
          `${path.basename(configPath)} changed (${changes.join(", ")}): reloading the model (the worker gets its config at load)`,
        );
        served = await loadModel(session);
      } else {
        inputs = new Set(await swapHandler(session, [...files][0]!));
        session.inspector?.setSources(ownSources(inputs));
      }
    } catch (error) {
      const message =
        error instanceof WorkerStartError || error instanceof ArchiveInputError ? error.message : ((error as Error).stack ?? String(error));
      session.say(`not live: ${message}\n(the running code keeps serving; save again to retry)`);
    }
  };

  const watchers = [...watchedFolders([...inputs], session.configFile)].map((folder) =>
    fs.watch(folder, (_event, name) => {
      if (!name) return;
      const file = path.join(folder, name.toString());
      if (file !== configPath && !inputs.has(file)) return;
      pending.add(file);
      clearTimeout(timer);
      // Editors save in several steps (write a temp file, rename): act once they are done.
      timer = setTimeout(() => {
        const files = pending;
        pending = new Set();
        busy = busy.then(() => react(files));
      }, 40);
    }),
  );
  session.say(
    `watching ${watchers.length} folder(s) for changes to ${path.basename(session.handler)}'s sources and ${path.basename(configPath)}; Ctrl-C stops`,
  );
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  for (const watcher of watchers) watcher.close();
  clearTimeout(timer);
  await busy;
}

async function bundleInputs(handler: string): Promise<string[]> {
  const outDir = await fsp.mkdtemp(path.join(os.tmpdir(), "tsserve-dev-"));
  try {
    return (await bundleHandler({ handler, outDir })).inputs;
  } finally {
    await fsp.rm(outDir, { recursive: true, force: true });
  }
}

const command: Command = {
  name: "dev",
  summary: "serve a handler and swap in each edit live, with the model loaded",
  usage,
  options: {
    handler: { type: "string" },
    "config-file": { type: "string", short: "c" },
    "model-name": { type: "string" },
    "port-base": { type: "string" },
    "no-inspector": { type: "boolean" },
  },
  async run({ values }) {
    const handler = values.handler as string | undefined;
    const configFile = values["config-file"] as string | undefined;
    if (!handler) throw new UsageError(`--handler is required\n\n${usage}`);
    if (!configFile) throw new UsageError(`--config-file is required\n\n${usage}`);
    for (const file of [handler, configFile]) if (!fs.existsSync(file)) throw new UsageError(`not found: ${file}`);
    const modelName = (values["model-name"] as string | undefined) ?? path.basename(handler).replace(/\.[cm]?tsx?$/, "");
    const portBase = parsePortBase(values["port-base"]);
    const say = (message: string) => process.stderr.write(`tsserve dev: ${message}\n`);
    const paths = workPaths();
    const inspector = values["no-inspector"] ? undefined : await openInspector(modelName, paths);
    const startedHere = !runningServer(paths);
    // TorchServe's workers, and so the handler's Node children, inherit this: they post each request's journey to the inspector.
    if (inspector && startedHere) process.env[INSPECTOR_URL_ENV] = inspector.journalUrl;
    if (inspector && !startedHere)
      say("TorchServe was already running: the inspector can send requests but sees no journeys (stop it and run tsserve dev again)");
    if (startedHere) await startServer({ paths, portBase, onProgress: say });
    else if (portBase !== undefined) say(`TorchServe is already running here; --port-base ${portBase} is not applied`);
    const state = readState(paths);
    if (!state) throw new UsageError("TorchServe is not running here, and could not be started");
    const client = connect(paths);
    const session: DevSession = {
      handler,
      configFile,
      modelName,
      paths,
      client,
      modelStore: state.modelStore,
      say,
      ...(inspector ? { inspector } : {}),
    };
    try {
      await runDev(session);
    } finally {
      await inspector?.close();
      if (startedHere) {
        say("stopping TorchServe");
        await stopServer({ paths });
      }
    }
  },
};

function openInspector(modelName: string, paths: WorkPaths): Promise<InspectorServer> {
  return startInspector({
    modelName,
    inference: () => ({ url: connect(paths).addresses.inference, key: readKeyFile(paths.keyFile)?.inference.key }),
    pageDir: path.join(PACKAGE_ROOT, "dist", "inspector"),
  });
}

export default command;

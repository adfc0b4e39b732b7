import fs from "node:fs";
import path from "node:path";
import { batchSizeRefusal, missingModelPathRefusal, perModelInstallWarning } from "../../archive/deploy-checks.ts";
import { readArchiveFile, readManifest, readPackedModelConfig, UnsafeArchiveError } from "../../archive/reader.ts";
import { BUNDLE_FILE, BUNDLE_MAP_FILE } from "../../bundle/bundle-files.ts";
import { configChanges, liveBundleFolders, writeBundle } from "../../client/hot-swap.ts";
import type { TorchServeClient } from "../../client/http.ts";
import { TorchServeError } from "../../client/http.ts";
import { workPaths } from "../../client/paths.ts";
import { isTrue, readProperties } from "../../client/properties.ts";
import { registerWatched, stageArchive, WorkerStartError } from "../../client/model-registration.ts";
import { connect, readState, ServerError } from "../../client/torchserve-process.ts";
import { UsageError, type Command } from "../command.ts";

const usage = `Usage: tsserve register ARCHIVE [--model-name N] [--initial-workers N] [--batch-size B] [--max-batch-delay MS] [--timeout S] [--replace]

Copies ARCHIVE (a .mar, .tar.gz or archive folder) into the model store if it is not there,
registers it, and waits until its workers are ready. What can be checked first is (the
checkpoint folder exists here). A worker that fails to load is reported with the cause from
the model log, and the model is unregistered again. TorchServe is asked asynchronously, so a
failed load never leaves it stuck.

Options:
  --model-name N        name to serve it under (default: the manifest's modelName)
  --initial-workers N   workers to start (default 1)
  --batch-size B        TorchServe batch size
  --max-batch-delay MS  how long TorchServe waits to fill a batch
  --timeout S           give up (and unregister) when no worker is ready after S seconds (default 3600)
  --replace             the model is registered already: when only the handler changed (the packed config
                        is the same), swap the new handler into its running workers with the model loaded;
                        else unregister it and register this archive (the model reloads)`;

function intOption(values: Record<string, unknown>, key: string, min: number): number | undefined {
  const raw = values[key];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${key} must be an integer >= ${min}, not "${raw}"`);
  return n;
}

/**
 * What deploy-checks says about this archive on this TorchServe: a refusal
 * (thrown) or a warning. Nothing for an archive whose config cannot be read (not one of ours).
 */
async function checkArchive(archive: string, tsConfig: string | undefined, batchSize: number | undefined): Promise<string | undefined> {
  const packed = await readPackedModelConfig(archive).catch(() => undefined);
  if (!packed) return undefined;
  const configName = packed.manifest.model.configFile ?? "its model config";
  const refusal = missingModelPathRefusal(packed.config, configName) ?? batchSizeRefusal(packed.config, batchSize, configName);
  if (refusal) throw new UsageError(refusal);
  const installsPerModel =
    tsConfig !== undefined && fs.existsSync(tsConfig) && isTrue(readProperties(tsConfig).get("install_py_dep_per_model"));
  return installsPerModel ? perModelInstallWarning(packed.config, configName) : undefined;
}

const say = (message: string) => process.stderr.write(`tsserve register: ${message}\n`);

/**
 * `--replace` for a registered model: true when the new archive's handler was
 * swapped into the running workers (same packed config, see client/hot-swap.ts);
 * false once the model is unregistered, for a fresh register that reloads it.
 */
async function replaceHandler(client: TorchServeClient, archive: string, modelName: string, modelStore: string): Promise<boolean> {
  const registered = (await client.listModels()).models.find((model) => model.modelName === modelName);
  if (!registered) {
    say(`${modelName} is not registered: registering it`);
    return false;
  }
  const started = Date.now();
  // The config the workers loaded: their unpacked copy's, else the model store's.
  const folders = await liveBundleFolders(client, modelName);
  const running = await readPackedModelConfig(folders[0] ?? path.join(modelStore, registered.modelUrl)).catch(() => undefined);
  const incoming = await readPackedModelConfig(archive);
  const changes = running ? configChanges(running.config, incoming.config) : ["(the running archive cannot be read)"];
  if (changes.length === 0 && folders.length > 0) {
    const bundle = await readArchiveFile(archive, BUNDLE_FILE);
    const map = await readArchiveFile(archive, BUNDLE_MAP_FILE).catch(() => undefined);
    for (const folder of folders) await writeBundle(folder, bundle, map);
    say(
      `replaced the handler of ${modelName} in ${folders.length} running worker folder(s) in ${Date.now() - started} ms; ` +
        "the model stayed loaded (the next request runs the new code)",
    );
    process.stdout.write(`Model "${modelName}" handler replaced\n`);
    return true;
  }
  const why = changes.length > 0 ? `the config changed (${changes.join(", ")})` : "no running worker to swap the handler into";
  say(`${why}: unregistering ${modelName} and registering the new archive (the model reloads)`);
  await client.unregisterModel(modelName);
  return false;
}

const command: Command = {
  name: "register",
  summary: "register a model archive and wait for its workers",
  usage,
  positionals: true,
  options: {
    "model-name": { type: "string" },
    "initial-workers": { type: "string" },
    "batch-size": { type: "string" },
    "max-batch-delay": { type: "string" },
    timeout: { type: "string" },
    replace: { type: "boolean", default: false },
  },
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new UsageError(`expected one ARCHIVE\n\n${usage}`);
    const archive = positionals[0]!;
    const paths = workPaths();
    const state = readState(paths);
    if (!state) throw new UsageError("TorchServe is not running here: start it with `tsserve start`");
    const initialWorkers = intOption(values, "initial-workers", 0) ?? 1;
    const batchSize = intOption(values, "batch-size", 1);
    const maxBatchDelay = intOption(values, "max-batch-delay", 0);
    const timeoutS = intOption(values, "timeout", 1) ?? 3600;
    let url = archive;
    let modelName = values["model-name"] as string | undefined;
    const client = connect(paths);
    if (values.replace) {
      if (!fs.existsSync(archive)) throw new UsageError(`--replace takes an archive file or folder; not found: ${archive}`);
      modelName ??= (await readManifest(archive)).model.modelName;
      if (await replaceHandler(client, archive, modelName, state.modelStore)) return 0;
    }
    if (fs.existsSync(archive)) {
      try {
        const warning = await checkArchive(archive, state.tsConfig, batchSize);
        if (warning) process.stderr.write(`tsserve register: warning: ${warning}\n`);
        const staged = await stageArchive(archive, state.modelStore);
        url = staged.url;
        modelName ??= staged.modelName;
      } catch (error) {
        if (error instanceof UnsafeArchiveError || error instanceof ServerError) throw new UsageError(error.message);
        throw error;
      }
    } else if (!/^https?:\/\//.test(archive) && !fs.existsSync(path.join(state.modelStore, archive))) {
      throw new UsageError(`archive not found: ${archive} (neither a path nor a name in the model store ${state.modelStore})`);
    }
    modelName ??= path.basename(url).replace(/\.(mar|tar\.gz)$/, "");
    process.stderr.write(`tsserve register: registering ${modelName} from ${url} with ${initialWorkers} worker(s)\n`);
    try {
      const result = await registerWatched(client, { url, modelName, initialWorkers, batchSize, maxBatchDelay }, paths, {
        timeoutMs: timeoutS * 1000,
        onProgress: (m) => process.stderr.write(`tsserve register: ${m}\n`),
      });
      process.stderr.write(`tsserve register: ${modelName} is ready after ${result.seconds.toFixed(1)} s\n`);
      process.stdout.write(`${result.status}\n`);
    } catch (error) {
      if (error instanceof WorkerStartError) {
        process.stderr.write(`tsserve register: ${error.message}\n(full log: ${path.join(paths.logs, "model_log.log")})\n`);
        return 1;
      }
      if (error instanceof TorchServeError) {
        process.stderr.write(`tsserve register: TorchServe answered ${error.status}: ${error.message}\n`);
        return 1;
      }
      throw error;
    }
  },
};

export default command;

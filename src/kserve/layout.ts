/**
 * `tsserve kserve`'s output: the storage layout KServe's TorchServe runtime
 * reads from storageUri (config/config.properties with model_snapshot,
 * model-store/*.mar) and the InferenceService manifest beside it.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { PACKAGE_ROOT } from "../package-root.ts";
import { readPackedModelConfig } from "../archive/reader.ts";
import { missingVenvMessage, turnsOnVenv } from "../archive/deploy-checks.ts";
import { inferenceService, serviceName, type KServeProtocol } from "./inference-service.ts";
import { kserveProperties, type KServeModel } from "./snapshot.ts";

/** Bad input (exit code 2 in the CLI): nothing has been written. */
export class KServeInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KServeInputError";
  }
}

interface ArchiveFacts {
  model: KServeModel;
  /** GPUs its workers take (minWorkers x num_gpu_per_model; 0 for deviceType cpu). */
  gpus: number;
  warnings: string[];
}

function count(value: unknown, fallback: number, key: string, archive: string): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0)
    throw new KServeInputError(`${archive}: ${key} must be a whole number, not ${JSON.stringify(value)}`);
  return value;
}

/** The model, its worker settings and its GPU need, from the archive's manifest and packed model-config.yaml. */
async function readArchiveFacts(archive: string): Promise<ArchiveFacts> {
  if (!archive.endsWith(".mar") || !fs.statSync(archive, { throwIfNoEntry: false })?.isFile()) {
    throw new KServeInputError(
      `${archive}: not a .mar file (KServe's runtime loads model-store/*.mar: build it with tsserve archive's default format)`,
    );
  }
  const { manifest, config } = await readPackedModelConfig(archive).catch((error: Error) => {
    throw new KServeInputError(`${archive}: not a model archive (${error.message})`);
  });
  const { modelName, modelVersion, configFile } = manifest.model;
  if (!configFile || !config)
    throw new KServeInputError(`${archive}: its manifest names no model config (was it built by tsserve archive?)`);
  const handler = (config.handler ?? {}) as Record<string, unknown>;
  const warnings: string[] = [];
  const minWorkers = count(config.minWorkers, 1, "minWorkers", archive);
  let batchSize = count(config.batchSize, 1, "batchSize", archive);
  if (batchSize > 1) {
    warnings.push(`${modelName}: batchSize ${batchSize} -> 1: TorchServe's KServe envelopes answer only the first request of a batch`);
    batchSize = 1;
  }
  if (config.asyncCommunication !== true) {
    warnings.push(
      `${modelName}: its model config has no "asyncCommunication: true": TorchServe then runs batches of batchSize one after another instead of continuous batching`,
    );
  }
  if (!turnsOnVenv(config)) warnings.push(`${modelName}: ${missingVenvMessage(configFile)}`);
  const gpus = config.deviceType === "cpu" ? 0 : minWorkers * count(handler.num_gpu_per_model, 1, "handler.num_gpu_per_model", archive);
  return {
    model: {
      name: modelName,
      version: modelVersion ?? "1.0",
      marName: path.basename(archive),
      minWorkers,
      maxWorkers: count(config.maxWorkers, minWorkers, "maxWorkers", archive),
      batchSize,
      maxBatchDelay: count(config.maxBatchDelay, 100, "maxBatchDelay", archive),
      responseTimeout: count(config.responseTimeout, 120, "responseTimeout", archive),
    },
    gpus,
    warnings,
  };
}

interface LayoutOptions {
  /** .mar files from tsserve archive. */
  archives: string[];
  /** The layout folder (what storageUri holds). */
  out: string;
  protocol: KServeProtocol;
  /** The InferenceService's name (default: the first model's). */
  name?: string;
  storageUri?: string;
  /** nvidia.com/gpu (default: what the models' configs ask for). */
  gpus?: number;
  memory?: string;
  force?: boolean;
}

interface LayoutResult {
  properties: string;
  manifest: string;
  archives: string[];
  gpus: number;
  warnings: string[];
}

export const STORAGE_URI_PLACEHOLDER = "s3://CHANGE-ME/PATH";

export async function writeKServeLayout(options: LayoutOptions): Promise<LayoutResult> {
  if (options.archives.length === 0) throw new KServeInputError("name at least one archive (--archive FILE.mar)");
  const facts = await Promise.all(options.archives.map(readArchiveFacts));
  const names = new Set<string>();
  for (const f of facts) {
    if (names.has(f.model.name)) throw new KServeInputError(`two archives serve the model "${f.model.name}"`);
    names.add(f.model.name);
  }
  const out = path.resolve(options.out);
  const properties = path.join(out, "config", "config.properties");
  const manifest = path.join(out, "inferenceservice.yaml");
  const store = path.join(out, "model-store");
  const archives = facts.map((f) => path.join(store, f.model.marName));
  const existing = [properties, manifest, ...archives].filter((f) => fs.existsSync(f));
  if (existing.length && !options.force) throw new KServeInputError(`refusing to overwrite ${existing.join(", ")} (pass --force)`);

  const gpus = options.gpus ?? facts.reduce((sum, f) => sum + f.gpus, 0);
  await fsp.mkdir(path.dirname(properties), { recursive: true });
  await fsp.mkdir(store, { recursive: true });
  for (const [i, archive] of options.archives.entries()) {
    if (path.resolve(archive) !== archives[i]) await fsp.copyFile(archive, archives[i]!);
  }
  await fsp.writeFile(properties, kserveProperties(facts.map((f) => f.model)));
  await fsp.copyFile(path.join(PACKAGE_ROOT, "configs", "torchserve", "metrics.yaml"), path.join(out, "config", "metrics.yaml"));
  await fsp.writeFile(
    manifest,
    inferenceService({
      name: serviceName(options.name ?? facts[0]!.model.name),
      protocol: options.protocol,
      storageUri: options.storageUri ?? STORAGE_URI_PLACEHOLDER,
      gpus,
      memory: options.memory,
    }),
  );
  return { properties, manifest, archives, gpus, warnings: facts.flatMap((f) => f.warnings) };
}

/**
 * `tsserve archive`: bundle the handler, check the model config against its
 * schema (../config/model-config-file.ts), generate the per-model shim module,
 * and pack everything the way torch-model-archiver 0.12 does (same manifest,
 * same layout, same formats), so a stock TorchServe loads it as one of its own.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import * as tar from "tar";
import yazl from "yazl";
import { bundleHandler } from "../bundle/bundle.ts";
import { BUNDLE_FILE, BUNDLE_MAP_FILE } from "../bundle/bundle-files.ts";
import { loadHandlerConfigSchema } from "../bundle/handler-config-schema.ts";
import { ArchiveInputError } from "../config/input-error.ts";
import { resolveModelPath } from "../config/model-config.ts";
import { checkUnknownKeys, readModelConfig, validateModelConfig, type ModelConfigFile } from "../config/model-config-file.ts";
import { packedConfig } from "../config/packed-config.ts";
import { PACKAGE_ROOT } from "../package-root.ts";
import { MANIFEST_PATH, MODEL_NAME_PATTERN, renderManifest, type ManifestModel } from "./manifest.ts";
import { secretReason } from "./secrets.ts";
import { ARCHIVE_REQUIREMENTS_FILE, SHIM_REQUIREMENTS_FILE, archiveRequirements, userRequirementLines } from "./requirements.ts";
import { hostPackageWarnings, modelPathWarning, venvRefusal } from "./deploy-checks.ts";
import { SHIM_HANDLER_FILE, SHIM_PACKAGE_DIR, renderShimHandler } from "./shim.ts";

export const ARCHIVE_FORMATS = ["default", "zip-store", "tgz", "no-archive"] as const;
export type ArchiveFormatOption = (typeof ARCHIVE_FORMATS)[number];

/** What the archiver appends to the model name, per format (as torch-model-archiver). */
const FORMAT_SUFFIX: Record<ArchiveFormatOption, string> = {
  default: ".mar",
  "zip-store": ".mar",
  tgz: ".tar.gz",
  "no-archive": "",
};

/** The shipped shim package, next to this source tree. */
const SHIM_PACKAGE_SOURCE = path.join(PACKAGE_ROOT, "python_shim", "tsserve_shim");

/** File kinds that are model weights: they stay where `model_path` points, never in the archive. */
const WEIGHT_SUFFIXES = [".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".h5", ".msgpack"];

interface ArchiveOptions {
  modelName: string;
  version: string;
  /** The TypeScript handler module. */
  handler: string;
  /** model-config.yaml; its `handler:` section is checked against the handler's config schema. */
  configFile: string;
  requirementsFile?: string;
  /** Files and folders packed at the archive's top level (a folder's contents, as torch-model-archiver does). */
  extraFiles?: string[];
  exportPath?: string;
  archiveFormat?: ArchiveFormatOption;
  /** Overwrite existing output, and allow extra files that look like secrets or weights. */
  force?: boolean;
  /** Refuse a config with keys that nothing reads (else they are warnings). */
  strict?: boolean;
  createdOn?: Date;
}

export interface ArchiveHooks {
  /** Defaults to src/bundle's `bundleHandler`. */
  bundle?: (options: { handler: string; outDir: string }) => Promise<{ bundlePath: string; mapPath: string }>;
  shimPackage?: string;
  log?: (message: string) => void;
}

interface ArchiveResult {
  /** The .mar, .tar.gz or folder written. */
  path: string;
  manifest: string;
  /** Files in the archive as TorchServe sees them (sorted, manifest included). */
  files: string[];
  warnings: string[];
}

/** One file to pack: its name inside the archive and where its bytes come from. */
interface Item {
  name: string;
  from: string;
}

function exists(p: string): boolean {
  return fs.existsSync(p);
}

/** The shim package's files: everything but tests and caches. */
async function shimPackageItems(source: string): Promise<Item[]> {
  const items: Item[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const dirent of await fsp.readdir(path.join(source, rel), { withFileTypes: true })) {
      const name = rel ? `${rel}/${dirent.name}` : dirent.name;
      if (dirent.isDirectory()) {
        if (dirent.name === "__pycache__" || dirent.name === "tests" || dirent.name.startsWith(".")) continue;
        await walk(name);
      } else if (dirent.isFile()) {
        if (/\.py[co]$/.test(dirent.name) || /^test_.*\.py$/.test(dirent.name) || dirent.name === "conftest.py") continue;
        items.push({ name: `${SHIM_PACKAGE_DIR}/${name}`, from: path.join(source, name) });
      }
    }
  };
  await walk("");
  if (!items.some((i) => i.name === `${SHIM_PACKAGE_DIR}/handler.py`)) {
    throw new Error(`the shim package at ${source} has no handler.py`);
  }
  return items;
}

/** Extra files as torch-model-archiver packs them: a file at the top level, a folder's contents at the top level. */
async function extraFileItems(extras: string[], force: boolean, modelPath: string | undefined, warnings: string[]): Promise<Item[]> {
  const items: Item[] = [];
  const refuse = (file: string, why: string): void => {
    if (!force) throw new ArchiveInputError(`refusing extra file ${file}: ${why} (pass --force to pack it anyway)`);
    warnings.push(`packing ${file} although ${why}`);
  };
  const screen = (file: string): void => {
    const secret = secretReason(file);
    if (secret) refuse(file, secret);
    if (WEIGHT_SUFFIXES.some((s) => file.toLowerCase().endsWith(s))) refuse(file, "it looks like model weights, which stay at model_path");
    if (modelPath) {
      const rel = path.relative(path.resolve(modelPath), path.resolve(file));
      if (rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel))) refuse(file, `it is inside model_path (${modelPath})`);
    }
  };
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const dirent of await fsp.readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, dirent.name);
      const name = rel ? `${rel}/${dirent.name}` : dirent.name;
      if (dirent.name === "__pycache__") continue;
      const stat = await fsp.stat(full);
      if (stat.isDirectory()) await walk(full, name);
      else if (stat.isFile()) {
        screen(full);
        items.push({ name, from: full });
      }
    }
  };
  for (const extra of extras) {
    const stat = await fsp.stat(extra).catch(() => undefined);
    if (!stat) throw new ArchiveInputError(`extra file does not exist: ${extra}`);
    if (stat.isDirectory()) {
      screen(extra);
      await walk(extra, "");
    } else if (stat.isFile()) {
      screen(extra);
      items.push({ name: path.basename(extra), from: extra });
    } else throw new ArchiveInputError(`invalid extra file: ${extra}`);
  }
  return items;
}

async function writeZip(items: Item[], manifest: string, out: string, store: boolean): Promise<void> {
  const zip = new yazl.ZipFile();
  for (const item of items) zip.addFile(item.from, item.name, { compress: !store });
  zip.addBuffer(Buffer.from(manifest, "utf8"), MANIFEST_PATH, { compress: !store });
  zip.end();
  await new Promise<void>((resolve, reject) => {
    const sink = fs.createWriteStream(out, { flags: "wx" });
    sink.on("close", () => resolve());
    sink.on("error", reject);
    zip.outputStream.on("error", reject).pipe(sink);
  });
}

async function writeFolder(items: Item[], manifest: string, out: string): Promise<void> {
  await fsp.mkdir(out);
  for (const item of [...items, { name: MANIFEST_PATH, from: "" }]) {
    const dest = path.join(out, item.name);
    await fsp.mkdir(path.dirname(dest), { recursive: true });
    if (item.from) await fsp.copyFile(item.from, dest, fs.constants.COPYFILE_EXCL);
    else await fsp.writeFile(dest, manifest, { flag: "wx" });
  }
}

async function writeTgz(items: Item[], manifest: string, out: string, modelName: string, scratch: string): Promise<void> {
  // node-tar packs from the file system: lay the files out under one folder, then pack it as NAME/...
  const stage = path.join(scratch, "tgz");
  await writeFolder(items, manifest, stage);
  const names = [...items.map((i) => i.name), MANIFEST_PATH];
  await tar.c({ gzip: true, file: out, cwd: stage, prefix: modelName, portable: true }, names);
}

/** Where the archive goes: `out`, in `exportPath`; throws ArchiveInputError for options that cannot make one. */
function checkOptions(options: ArchiveOptions, format: ArchiveFormatOption, force: boolean): { exportPath: string; out: string } {
  if (!MODEL_NAME_PATTERN.test(options.modelName)) {
    throw new ArchiveInputError(
      `model name "${options.modelName}" must match ${MODEL_NAME_PATTERN.source} (as torch-model-archiver requires)`,
    );
  }
  if (!options.version) throw new ArchiveInputError("--version is required");
  if (!ARCHIVE_FORMATS.includes(format)) throw new ArchiveInputError(`--archive-format must be one of ${ARCHIVE_FORMATS.join(", ")}`);
  const exportPath = path.resolve(options.exportPath ?? process.cwd());
  const exportStat = fs.statSync(exportPath, { throwIfNoEntry: false });
  if (exportStat && !exportStat.isDirectory()) throw new ArchiveInputError(`export path ${exportPath} is not a directory`);
  const out = path.join(exportPath, options.modelName + FORMAT_SUFFIX[format]);
  if (exists(out) && !force) throw new ArchiveInputError(`${out} already exists (pass --force to overwrite it)`);
  if (!exists(options.handler)) throw new ArchiveInputError(`handler not found: ${options.handler}`);
  if (!exists(options.configFile)) throw new ArchiveInputError(`config file not found: ${options.configFile}`);
  if (options.requirementsFile !== undefined && !fs.statSync(options.requirementsFile, { throwIfNoEntry: false })?.isFile()) {
    throw new ArchiveInputError(`requirements file not found: ${options.requirementsFile}`);
  }
  return { exportPath, out };
}

type Bundler = NonNullable<ArchiveHooks["bundle"]>;

async function bundleInto(bundle: Bundler, handler: string, scratch: string): Promise<{ bundlePath: string; mapPath: string }> {
  try {
    return await bundle({ handler, outDir: path.join(scratch, "bundle") });
  } catch (error) {
    throw new ArchiveInputError(`cannot bundle handler ${handler}: ${(error as Error).message}`);
  }
}

/** The config checked against the handler's schema, and the model folder it names (resolved as the worker will). */
async function checkedConfig(
  options: ArchiveOptions,
  raw: Record<string, unknown>,
  bundlePath: string,
  warnings: string[],
): Promise<{ config: Record<string, unknown>; modelPath: string | undefined }> {
  const schema = await loadHandlerConfigSchema(options.handler, bundlePath);
  const config = validateModelConfig(raw, schema, options.configFile, options.handler);
  warnings.push(...checkUnknownKeys(raw, schema, options.configFile, options.handler, options.strict ?? false));
  const handlerSection = config.handler as { model_path?: unknown };
  const modelPath =
    typeof handlerSection.model_path === "string" ? resolveModelPath(options.configFile, handlerSection.model_path) : undefined;
  const missingModel = modelPathWarning("model_path", modelPath);
  if (missingModel) warnings.push(missingModel);
  return { config, modelPath };
}

/** The config file to pack: the user's, or its rewritten copy in `scratch`. */
async function configToPack(configFile: string, packed: string | undefined, scratch: string): Promise<string> {
  if (packed === undefined) return configFile;
  const copy = path.join(scratch, "config", path.basename(configFile));
  await fsp.mkdir(path.dirname(copy), { recursive: true });
  await fsp.writeFile(copy, packed);
  return copy;
}

/**
 * requirements.txt, written to `scratch`: the shim's Python requirements, Node as a wheel,
 * bitsandbytes when quantizing, then the user's -r file (refused when it would replace the host's packages in a venv).
 */
async function writeRequirements(
  options: ArchiveOptions,
  config: Record<string, unknown>,
  scratch: string,
  warnings: string[],
): Promise<string> {
  const userRequirements = options.requirementsFile === undefined ? undefined : await fsp.readFile(options.requirementsFile, "utf8");
  const userRequirementsName = options.requirementsFile === undefined ? undefined : path.basename(options.requirementsFile);
  const requirements = archiveRequirements({
    shimRequirements: await fsp.readFile(SHIM_REQUIREMENTS_FILE, "utf8"),
    quantize: (config.handler as { quantize?: string }).quantize,
    engine: (config.handler as { engine?: string }).engine,
    deviceType: typeof config.deviceType === "string" ? config.deviceType : undefined,
    userRequirements,
    userRequirementsName,
  });
  warnings.push(...requirements.overrides);
  if (userRequirements !== undefined) {
    const userLines = userRequirementLines(userRequirements);
    const refusal = venvRefusal(config, path.basename(options.configFile), userLines, userRequirementsName!);
    if (refusal) throw new ArchiveInputError(refusal);
    warnings.push(...hostPackageWarnings(userLines, userRequirementsName!));
  }
  const requirementsFile = path.join(scratch, ARCHIVE_REQUIREMENTS_FILE);
  await fsp.writeFile(requirementsFile, requirements.text);
  return requirementsFile;
}

/** Refuses two items with one name, and any item where the manifest goes. */
function refuseClashes(items: readonly Item[]): void {
  const seen = new Map<string, string>();
  for (const item of items) {
    const top = item.name.split("/")[0]!;
    const clash = seen.get(item.name) ?? (item.name === MANIFEST_PATH || top === "MAR-INF" ? "the manifest" : undefined);
    if (clash) throw new ArchiveInputError(`${item.from} would overwrite ${item.name} (from ${clash}) in the archive`);
    seen.set(item.name, item.from);
  }
}

/** Everything the archive holds but its manifest, each item checked; `warnings` gets what was packed despite a doubt. */
async function archiveItems(
  options: ArchiveOptions,
  hooks: ArchiveHooks,
  modelConfig: ModelConfigFile,
  scratch: string,
  warnings: string[],
): Promise<Item[]> {
  const log = hooks.log ?? (() => {});
  const { raw, doc } = modelConfig;
  log(`bundling ${options.handler}`);
  const built = await bundleInto(hooks.bundle ?? bundleHandler, options.handler, scratch);
  const { config, modelPath } = await checkedConfig(options, raw, built.bundlePath, warnings);
  const packed = packedConfig(doc, options.configFile);
  const extras = await extraFileItems(options.extraFiles ?? [], options.force ?? false, modelPath, warnings);
  const shim = await shimPackageItems(hooks.shimPackage ?? SHIM_PACKAGE_SOURCE);
  const configSource = await configToPack(options.configFile, packed.text, scratch);
  if (packed.text !== undefined) for (const r of packed.rewrites) log(`packed config: ${r}`);
  const requirementsFile = await writeRequirements(options, config, scratch, warnings);
  const shimFile = path.join(scratch, SHIM_HANDLER_FILE);
  await fsp.writeFile(shimFile, renderShimHandler({ modelName: options.modelName, handlerSource: path.basename(options.handler) }));
  const items: Item[] = [
    { name: SHIM_HANDLER_FILE, from: shimFile },
    { name: BUNDLE_FILE, from: built.bundlePath },
    { name: BUNDLE_MAP_FILE, from: built.mapPath },
    ...shim,
    { name: path.basename(options.configFile), from: configSource },
    { name: ARCHIVE_REQUIREMENTS_FILE, from: requirementsFile },
    ...extras,
  ];
  refuseClashes(items);
  return items;
}

/** Writes next to the destination, then swaps it in, so a failure never leaves half an archive. */
async function writeArchive(
  items: Item[],
  manifest: string,
  out: string,
  format: ArchiveFormatOption,
  modelName: string,
  scratch: string,
  log: (m: string) => void,
): Promise<void> {
  const temp = path.join(path.dirname(out), `.${modelName}.tsserve-${process.pid}${FORMAT_SUFFIX[format]}`);
  await fsp.rm(temp, { recursive: true, force: true });
  try {
    if (format === "tgz") await writeTgz(items, manifest, temp, modelName, scratch);
    else if (format === "no-archive") await writeFolder(items, manifest, temp);
    else await writeZip(items, manifest, temp, format === "zip-store");
    if (exists(out)) {
      log(`overwriting ${out}`);
      await fsp.rm(out, { recursive: true, force: true });
    }
    await fsp.rename(temp, out);
  } catch (error) {
    await fsp.rm(temp, { recursive: true, force: true });
    throw error;
  }
}

/** Builds the archive. Throws ArchiveInputError (nothing written) for bad input. */
export async function createArchive(options: ArchiveOptions, hooks: ArchiveHooks = {}): Promise<ArchiveResult> {
  const format = options.archiveFormat ?? "default";
  const { exportPath, out } = checkOptions(options, format, options.force ?? false);
  const warnings: string[] = [];
  // The config is read before anything is bundled, and checked against the handler's own schema before anything is packed.
  const modelConfig = await readModelConfig(options.configFile);
  const scratch = await fsp.mkdtemp(path.join(os.tmpdir(), "tsserve-archive-"));
  try {
    const items = await archiveItems(options, hooks, modelConfig, scratch, warnings);
    const model: ManifestModel = {
      modelName: options.modelName,
      handler: SHIM_HANDLER_FILE,
      modelVersion: options.version,
      requirementsFile: ARCHIVE_REQUIREMENTS_FILE,
      configFile: path.basename(options.configFile),
    };
    const manifest = renderManifest(model, options.createdOn);
    // A missing export folder is made (`--export-path model_store` in a fresh project), once the input has passed.
    await fsp.mkdir(exportPath, { recursive: true });
    await writeArchive(items, manifest, out, format, options.modelName, scratch, hooks.log ?? (() => {}));
    const files = [...items.map((i) => i.name), MANIFEST_PATH].sort();
    return { path: out, manifest, files, warnings };
  } finally {
    await fsp.rm(scratch, { recursive: true, force: true });
  }
}

/**
 * `tsserve archive`: validate the model config against the handler's schema,
 * bundle the handler, generate the per-model shim module, and pack everything
 * the way torch-model-archiver 0.12 does (same manifest, same layout, same
 * formats), so a stock TorchServe loads it as one of its own.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import * as tar from "tar";
import YAML from "yaml";
import yazl from "yazl";
import type { z } from "zod";
import { importHandlerBundle } from "../bundle/bundle.ts";
import { parseModelConfig, resolveModelPath } from "../config/model-config.ts";
import { unknownConfigKeys, type UnknownKey } from "../config/unknown-keys.ts";
import { PACKAGE_ROOT } from "../package-root.ts";
import { MANIFEST_PATH, MODEL_NAME_PATTERN, renderManifest, type ManifestModel } from "./manifest.ts";
import { secretReason } from "./secrets.ts";
import { ARCHIVE_REQUIREMENTS_FILE, SHIM_REQUIREMENTS_FILE, archiveRequirements, userRequirementLines } from "./requirements.ts";
import { hostPackageWarnings, modelPathWarning, venvRefusal } from "./deploy-checks.ts";
import { BUNDLE_FILE, BUNDLE_MAP_FILE, SHIM_HANDLER_FILE, SHIM_PACKAGE_DIR, renderShimHandler } from "./shim.ts";

export const ARCHIVE_FORMATS = ["default", "zip-store", "tgz", "no-archive"] as const;
export type ArchiveFormatOption = (typeof ARCHIVE_FORMATS)[number];

/** What the archiver appends to the model name, per format (as torch-model-archiver). */
export const FORMAT_SUFFIX: Record<ArchiveFormatOption, string> = {
  default: ".mar",
  "zip-store": ".mar",
  tgz: ".tar.gz",
  "no-archive": "",
};

/** The shipped shim package, next to this source tree. */
export const SHIM_PACKAGE_SOURCE = path.join(PACKAGE_ROOT, "python_shim", "tsserve_shim");

/** File kinds that are model weights: they stay where `model_path` points, never in the archive. */
const WEIGHT_SUFFIXES = [".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".h5", ".msgpack"];

/** Bad input to the archiver (exit code 2 in the CLI): nothing has been written. */
export class ArchiveInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ArchiveInputError";
  }
}

export interface ArchiveOptions {
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

export interface ArchiveResult {
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

/** Formats zod issues as `handler.model_path: Invalid input: expected string` lines. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues.map((i) => `  ${i.path.length ? i.path.map(String).join(".") : "(root)"}: ${i.message}`).join("\n");
}

/** The handler class's config schema, read from the handler's bundle (its default export is the handler class). */
export async function loadHandlerConfigSchema(handler: string, bundlePath: string): Promise<z.ZodType<unknown>> {
  let Cls: unknown;
  try {
    Cls = await importHandlerBundle(bundlePath);
  } catch (error) {
    throw new ArchiveInputError(`cannot load handler ${handler}: ${(error as Error).message}`);
  }
  if (typeof Cls !== "function") throw new ArchiveInputError(`${handler} must export its handler class as default`);
  const instance = new (Cls as new () => { configSchema?: unknown })();
  const schema = instance.configSchema as z.ZodType<unknown> | undefined;
  if (!schema || typeof (schema as { safeParse?: unknown }).safeParse !== "function") {
    throw new ArchiveInputError(`${handler}: the handler class has no zod configSchema`);
  }
  return schema;
}

/** Reads model-config.yaml: its YAML document and its top-level mapping, which must have a `handler:` section. */
export async function readModelConfig(configFile: string): Promise<{ raw: Record<string, unknown>; doc: YAML.Document }> {
  const text = await fsp.readFile(configFile, "utf8");
  const doc = YAML.parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ArchiveInputError(`${configFile} is not valid YAML:\n${doc.errors.map((e) => `  ${e.message}`).join("\n")}`);
  }
  const raw: unknown = doc.toJS();
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new ArchiveInputError(`${configFile} must be a YAML mapping`);
  if (!("handler" in raw)) throw new ArchiveInputError(`${configFile}: missing the "handler:" section (model_path and the handler's settings)`);
  return { raw: raw as Record<string, unknown>, doc };
}

/** Checks the parsed config against the handler's schema; returns the config as the handler will see it. */
export function validateModelConfig(raw: Record<string, unknown>, schema: z.ZodType<unknown>, configFile: string, handler: string): Record<string, unknown> {
  const parsed = parseModelConfig(raw, schema);
  if (!parsed.success) {
    const unknown = unknownConfigKeys(raw, schema, path.basename(handler));
    const hints = unknown.length > 0 ? `\n${formatUnknownKeys(unknown)}` : "";
    throw new ArchiveInputError(`${configFile} does not match ${path.basename(handler)}'s config schema:\n${formatIssues(parsed.error.issues)}${hints}`);
  }
  return parsed.data as Record<string, unknown>;
}

function formatUnknownKeys(unknown: readonly UnknownKey[]): string {
  return unknown.map((u) => `  ${u.message}`).join("\n");
}

/**
 * Keys of the config that nothing reads: warnings, or with `strict` an
 * ArchiveInputError naming them all.
 */
export function checkUnknownKeys(raw: Record<string, unknown>, schema: z.ZodType<unknown>, configFile: string, handler: string, strict: boolean): string[] {
  const unknown = unknownConfigKeys(raw, schema, path.basename(handler));
  if (unknown.length === 0) return [];
  if (strict) throw new ArchiveInputError(`${configFile} has keys that nothing reads (--strict):\n${formatUnknownKeys(unknown)}`);
  return unknown.map((u) => `${configFile}: ${u.message}`);
}

/** Paths of the handler section that name folders (or, for gguf_file, a file) on the serving host. */
const PATH_KEYS = ["model_path", "tokenizer_path", "gguf_file"] as const;

/**
 * The config as packed: a relative `model_path`/`tokenizer_path` resolves
 * against the config file's folder, which inside the archive would be the
 * unpacked model folder, so it is rewritten to the absolute path it names
 * here. Comments and layout are kept. Returns the new text, or undefined when
 * nothing changed.
 */
export function absolutizePaths(doc: YAML.Document, configFile: string, rewrites: string[]): string | undefined {
  let changed = false;
  for (const key of PATH_KEYS) {
    const value: unknown = doc.getIn(["handler", key]);
    if (typeof value !== "string" || value === "" || path.isAbsolute(value) || value === "~" || value.startsWith("~/")) continue;
    if (key === "gguf_file" && !value.includes("/")) continue; // a file name inside model_path
    const absolute = resolveModelPath(configFile, value);
    doc.setIn(["handler", key], absolute);
    rewrites.push(`handler.${key}: ${value} -> ${absolute} (relative paths resolve against ${path.basename(configFile)}'s folder)`);
    changed = true;
  }
  return changed ? doc.toString() : undefined;
}

/** The start-up budget a vLLM-engine config gets when it names none: vLLM loads, profiles and compiles for minutes. */
export const VLLM_STARTUP_TIMEOUT_S = 600;

/**
 * The config as packed: a vLLM-engine config without `startupTimeout` gets VLLM_STARTUP_TIMEOUT_S
 * (TorchServe's own default, 120 s, kills the worker while vLLM is still starting, and says only
 * "Worker died"). Returns whether it was set.
 */
export function defaultStartupTimeout(doc: YAML.Document, rewrites: string[]): boolean {
  if (doc.getIn(["handler", "engine"]) !== "vllm" || doc.get("startupTimeout") !== undefined) return false;
  doc.set("startupTimeout", VLLM_STARTUP_TIMEOUT_S);
  rewrites.push(`startupTimeout: ${VLLM_STARTUP_TIMEOUT_S} (the vLLM engine starts in minutes; TorchServe's default is 120 s)`);
  return true;
}

/** The shim package's files: everything but tests and caches. */
export async function shimPackageItems(source: string): Promise<Item[]> {
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

/** Builds the archive. Throws ArchiveInputError (nothing written) for bad input. */
export async function createArchive(options: ArchiveOptions, hooks: ArchiveHooks = {}): Promise<ArchiveResult> {
  const log = hooks.log ?? (() => {});
  const format = options.archiveFormat ?? "default";
  const force = options.force ?? false;
  const warnings: string[] = [];
  if (!MODEL_NAME_PATTERN.test(options.modelName)) {
    throw new ArchiveInputError(`model name "${options.modelName}" must match ${MODEL_NAME_PATTERN.source} (as torch-model-archiver requires)`);
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

  // 1. The config, against the handler's own schema (read from its bundle), before anything is packed.
  const { raw, doc } = await readModelConfig(options.configFile);
  const scratch = await fsp.mkdtemp(path.join(os.tmpdir(), "tsserve-archive-"));
  try {
    log(`bundling ${options.handler}`);
    const bundle = hooks.bundle ?? (await import("../bundle/bundle.ts")).bundleHandler;
    let built: { bundlePath: string; mapPath: string };
    try {
      built = await bundle({ handler: options.handler, outDir: path.join(scratch, "bundle") });
    } catch (error) {
      throw new ArchiveInputError(`cannot bundle handler ${options.handler}: ${(error as Error).message}`);
    }
    const schema = await loadHandlerConfigSchema(options.handler, built.bundlePath);
    const config = validateModelConfig(raw, schema, options.configFile, options.handler);
    warnings.push(...checkUnknownKeys(raw, schema, options.configFile, options.handler, options.strict ?? false));
    const handlerSection = config.handler as { model_path?: unknown };
    const modelPath = typeof handlerSection.model_path === "string" ? resolveModelPath(options.configFile, handlerSection.model_path) : undefined;
    const missingModel = modelPathWarning("model_path", modelPath);
    if (missingModel) warnings.push(missingModel);
    const rewrites: string[] = [];
    const defaulted = defaultStartupTimeout(doc, rewrites);
    const packedConfig = absolutizePaths(doc, options.configFile, rewrites) ?? (defaulted ? doc.toString() : undefined);

    // 2. Everything that goes in, checked for clashes and secrets.
    const extras = await extraFileItems(options.extraFiles ?? [], force, modelPath, warnings);
    const shim = await shimPackageItems(hooks.shimPackage ?? SHIM_PACKAGE_SOURCE);
    let configSource = options.configFile;
    if (packedConfig !== undefined) {
      configSource = path.join(scratch, "config", path.basename(options.configFile));
      await fsp.mkdir(path.dirname(configSource), { recursive: true });
      await fsp.writeFile(configSource, packedConfig);
      for (const r of rewrites) log(`packed config: ${r}`);
    }
    // requirements.txt: the shim's Python requirements, Node as a wheel, bitsandbytes when quantizing, then the user's -r file.
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
    const seen = new Map<string, string>();
    for (const item of items) {
      const top = item.name.split("/")[0]!;
      const clash = seen.get(item.name) ?? (item.name === MANIFEST_PATH || top === "MAR-INF" ? "the manifest" : undefined);
      if (clash) throw new ArchiveInputError(`${item.from} would overwrite ${item.name} (from ${clash}) in the archive`);
      seen.set(item.name, item.from);
    }
    const model: ManifestModel = {
      modelName: options.modelName,
      handler: SHIM_HANDLER_FILE,
      modelVersion: options.version,
      requirementsFile: ARCHIVE_REQUIREMENTS_FILE,
      configFile: path.basename(options.configFile),
    };
    const manifest = renderManifest(model, options.createdOn);

    // 3. Write next to the destination, then swap it in, so a failure never leaves half an archive.
    // A missing export folder is made (`--export-path model_store` in a fresh project), once the input has passed.
    await fsp.mkdir(exportPath, { recursive: true });
    const temp = path.join(exportPath, `.${options.modelName}.tsserve-${process.pid}${FORMAT_SUFFIX[format]}`);
    await fsp.rm(temp, { recursive: true, force: true });
    try {
      if (format === "tgz") await writeTgz(items, manifest, temp, options.modelName, scratch);
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
    const files = [...items.map((i) => i.name), MANIFEST_PATH].sort();
    return { path: out, manifest, files, warnings };
  } finally {
    await fsp.rm(scratch, { recursive: true, force: true });
  }
}

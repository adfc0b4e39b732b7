import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import yauzl from "yauzl";
import { bundleHandler } from "../../../src/bundle/bundle.ts";

export const ROOT = path.resolve(import.meta.dirname, "../../..");
export const VENV_BIN = path.join(ROOT, ".venv", "bin");
export const PYTHON = path.join(VENV_BIN, "python");
export const FIXTURES = path.join(import.meta.dirname, "fixtures");
export const GREETING_HANDLER = path.join(FIXTURES, "greeting-handler.ts");
export const GREETING_CONFIG = path.join(FIXTURES, "greeting.yaml");

export function tempDir(prefix = "tsserve-test-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

type Bundled = Awaited<ReturnType<typeof bundleHandler>>;
const built = new Map<string, Promise<Bundled>>();

/** The real bundler's output for a handler file as it is now, built once per test worker (the bundle does not
 * depend on its folder: bundle.test.ts); each call gets its own copy in its outDir. */
async function bundleOnce(options: { handler: string; outDir: string }): Promise<Bundled> {
  const { mtimeMs, size } = fs.statSync(options.handler);
  const key = `${path.resolve(options.handler)}:${mtimeMs}:${size}`;
  if (!built.has(key)) built.set(key, bundleHandler({ handler: options.handler, outDir: tempDir("tsserve-bundle-") }));
  const first = await built.get(key)!;
  fs.mkdirSync(options.outDir, { recursive: true });
  const bundlePath = path.join(options.outDir, path.basename(first.bundlePath));
  const mapPath = path.join(options.outDir, path.basename(first.mapPath));
  fs.copyFileSync(first.bundlePath, bundlePath);
  fs.copyFileSync(first.mapPath, mapPath);
  return { ...first, bundlePath, mapPath };
}

/** The real bundler, recording which handlers it was asked to bundle. */
export function recordingBundle(calls: string[] = []) {
  return async (options: { handler: string; outDir: string }) => {
    calls.push(options.handler);
    return bundleOnce(options);
  };
}

/** Runs a Python snippet with the venv's interpreter; returns stdout. */
export function python(code: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): string {
  return execFileSync(PYTHON, ["-c", code, ...args], { encoding: "utf8", env: { ...process.env, ...env } });
}

/** name → compression method (0 stored, 8 deflate) of every zip entry. */
export async function zipMethods(file: string): Promise<Map<string, number>> {
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.open(file, { lazyEntries: true }, (err, z) => (err ? reject(err) : resolve(z!))),
  );
  const out = new Map<string, number>();
  await new Promise<void>((resolve, reject) => {
    zip.on("entry", (e: yauzl.Entry) => {
      out.set(e.fileName, e.compressionMethod);
      zip.readEntry();
    });
    zip.on("end", () => resolve());
    zip.on("error", reject);
    zip.readEntry();
  });
  zip.close();
  return out;
}

/**
 * Packs the contents of one of our `no-archive` folders with the real
 * torch-model-archiver from the venv: the generated shim module as
 * --handler, the config, requirements, and the rest through --extra-files
 * (a folder whose contents land at the archive's top level).
 */
export function realArchiver(
  ours: string,
  manifest: { model: { modelName: string; modelVersion?: string; configFile?: string; requirementsFile?: string } },
  format: "default" | "zip-store" | "tgz" | "no-archive",
  exportPath: string,
): string {
  const scratch = tempDir("tsserve-tma-");
  const extra = path.join(scratch, "extra");
  const handled = new Set(["tsserve_handler.py", "MAR-INF", manifest.model.configFile, manifest.model.requirementsFile]);
  fs.mkdirSync(extra);
  for (const name of fs.readdirSync(ours)) {
    if (!handled.has(name)) fs.cpSync(path.join(ours, name), path.join(extra, name), { recursive: true });
  }
  const args = [
    "--model-name",
    manifest.model.modelName,
    "--version",
    manifest.model.modelVersion ?? "1.0",
    "--handler",
    path.join(ours, "tsserve_handler.py"),
    "--extra-files",
    extra,
    "--export-path",
    exportPath,
    "--archive-format",
    format,
  ];
  if (manifest.model.configFile) args.push("--config-file", path.join(ours, manifest.model.configFile));
  if (manifest.model.requirementsFile) args.push("--requirements-file", path.join(ours, manifest.model.requirementsFile));
  // The archiver stages in $TMPDIR/<model name> and deletes it: give it its own.
  execFileSync(path.join(VENV_BIN, "torch-model-archiver"), args, { env: { ...process.env, TMPDIR: scratch }, stdio: "pipe" });
  const suffix = { default: ".mar", "zip-store": ".mar", tgz: ".tar.gz", "no-archive": "" }[format];
  return path.join(exportPath, manifest.model.modelName + suffix);
}

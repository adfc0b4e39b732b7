/**
 * Bundles a handler module into one ESM file that runs with plain `node`:
 * the handler's default export is handed to the tsserve runtime. The bundle
 * also exports the handler class, so the archiver can read its config schema
 * from it without a TypeScript loader (`importHandlerBundle`).
 */
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { PACKAGE_ROOT } from "../package-root.ts";
import { BUNDLE_FILE } from "./bundle-files.ts";

const RUNTIME_ENTRY = path.join(PACKAGE_ROOT, "src", "runtime", "index.ts");
/** CommonJS dependencies inside an ESM bundle still need `require` for Node built-ins. */
export const ESM_REQUIRE_BANNER =
  'import { createRequire as __tsserveCreateRequire } from "node:module"; const require = __tsserveCreateRequire(import.meta.url);';

/**
 * Set while a bundle is imported for its handler class: it then does not start
 * serving. A count, not a flag: with imports running concurrently (archives
 * built side by side), the first to finish must not clear it for the others.
 */
const IMPORT_ONLY = Symbol.for("tsserve.bundle.importOnly");

interface BundleOptions {
  /** Path of the handler's .ts module (its default export is the handler class). */
  handler: string;
  outDir: string;
  minify?: boolean;
}

interface BundleResult {
  bundlePath: string;
  mapPath: string;
  /** Absolute paths of the source files the bundle was built from (what `tsserve dev` watches). */
  inputs: string[];
}

export async function bundleHandler(options: BundleOptions): Promise<BundleResult> {
  const handler = path.resolve(options.handler);
  const outDir = path.resolve(options.outDir);
  await mkdir(outDir, { recursive: true });
  const bundlePath = path.join(outDir, BUNDLE_FILE);
  const entry = [
    `import Handler from ${JSON.stringify(handler)};`,
    `import { serve } from ${JSON.stringify(RUNTIME_ENTRY)};`,
    `if (typeof Handler !== "function") throw new Error(${JSON.stringify(`${path.basename(handler)} must export its handler class as default`)});`,
    "export default Handler;",
    `if (!globalThis[Symbol.for(${JSON.stringify(IMPORT_ONLY.description)})]) serve(Handler);`,
  ].join("\n");
  const result = await build({
    metafile: true,
    stdin: { contents: entry, resolveDir: path.dirname(handler), sourcefile: "tsserve-entry.ts", loader: "ts" },
    bundle: true,
    // A handler in a user's project imports the installed package ("tsserve"): its sources, so the
    // handler's classes and the runtime's (RUNTIME_ENTRY) are one copy (package.json's exports).
    conditions: ["tsserve-source"],
    platform: "node",
    target: "node20",
    format: "esm",
    outfile: bundlePath,
    sourcemap: "linked",
    minify: options.minify ?? false,
    // keepNames would wrap every named closure in a defineProperty call; in the
    // handler's hot path that cost the child ~80 µs of CPU per request (bench/OPTIMISATIONS.md).
    // Class names survive bundling unless two collide; stack traces go through the source map.
    keepNames: false,
    logLevel: "silent",
    banner: { js: ESM_REQUIRE_BANNER },
  });
  const mapPath = `${bundlePath}.map`;
  await nameSourcesFromProject(mapPath, projectRoot(handler));
  // Metafile paths are relative to esbuild's working folder; the stdin entry has no file.
  const inputs = Object.keys(result.metafile.inputs)
    .filter((input) => !input.startsWith("<"))
    .map((input) => path.resolve(input));
  return { bundlePath, mapPath, inputs };
}

/** The nearest folder above the handler with a package.json (its project), else the working folder. */
function projectRoot(handler: string): string {
  for (let dir = path.dirname(handler); ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, "package.json"))) return dir;
    if (path.dirname(dir) === dir) return process.cwd();
  }
}

/**
 * esbuild names sources relative to the bundle's folder (a scratch folder for
 * an archive); named relative to the handler's project instead, a stack
 * frame reads `handlers/smollm2.ts:14:22` wherever the archive is served.
 * sourceRoot keeps them resolvable to the files on the build host.
 */
async function nameSourcesFromProject(mapPath: string, root: string): Promise<void> {
  const map = JSON.parse(await readFile(mapPath, "utf8")) as { sources: string[]; sourceRoot?: string };
  const outDir = path.dirname(mapPath);
  map.sources = map.sources.map((source) => path.relative(root, path.resolve(outDir, source)).split(path.sep).join("/"));
  map.sourceRoot = `${pathToFileURL(root).href}/`;
  await writeFile(mapPath, JSON.stringify(map));
}

/** The handler class a bundle exports, imported without starting its runtime. */
export async function importHandlerBundle(bundlePath: string): Promise<unknown> {
  const flags = globalThis as Record<symbol, number | undefined>;
  flags[IMPORT_ONLY] = (flags[IMPORT_ONLY] ?? 0) + 1;
  try {
    const mod = (await import(pathToFileURL(path.resolve(bundlePath)).href)) as { default?: unknown };
    return mod.default;
  } finally {
    const left = (flags[IMPORT_ONLY] ?? 1) - 1;
    if (left > 0) flags[IMPORT_ONLY] = left;
    else delete flags[IMPORT_ONLY];
  }
}

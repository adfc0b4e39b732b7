/**
 * Bundles a handler module into one ESM file that runs with plain `node`:
 * the handler's default export is handed to the tsserve runtime.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

export const BUNDLE_FILE = "handler.mjs";

const RUNTIME_ENTRY = fileURLToPath(new URL("../runtime/index.ts", import.meta.url));

export interface BundleOptions {
  /** Path of the handler's .ts module (its default export is the handler class). */
  handler: string;
  outDir: string;
  minify?: boolean;
}

export interface BundleResult {
  bundlePath: string;
  mapPath: string;
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
    "serve(Handler);",
  ].join("\n");
  await build({
    stdin: { contents: entry, resolveDir: path.dirname(handler), sourcefile: "tsserve-entry.ts", loader: "ts" },
    bundle: true,
    platform: "node",
    target: "node20",
    format: "esm",
    outfile: bundlePath,
    sourcemap: "linked",
    minify: options.minify ?? false,
    keepNames: true,
    logLevel: "silent",
    // CommonJS dependencies inside an ESM bundle still need `require` for Node built-ins.
    banner: { js: 'import { createRequire as __tsserveCreateRequire } from "node:module"; const require = __tsserveCreateRequire(import.meta.url);' },
  });
  return { bundlePath, mapPath: `${bundlePath}.map` };
}

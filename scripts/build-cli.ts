// Builds the prebuilt CLI (dist/cli/): src/cli and its npm packages bundled
// by esbuild. bin/tsserve.mjs runs it while it is newer than src/, which
// saves starting tsx, transpiling the CLI and resolving hundreds of package
// files on every command. Without OUT_DIR it also builds the library a
// user's project imports (dist/lib, dist/types: scripts/build-lib.ts).
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { ESM_REQUIRE_BANNER } from "../src/bundle/bundle.ts";
import { buildLibrary } from "./build-lib.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
// tsx scripts/build-cli.ts [OUT_DIR] (default dist/cli; it must lie inside the package, which the CLI finds by walking up)
const outdir = path.resolve(root, process.argv[2] ?? "dist/cli");
await build({
  absWorkingDir: root,
  entryPoints: { main: "src/cli/main.ts" },
  outdir,
  outExtension: { ".js": ".mjs" },
  bundle: true,
  splitting: true, // commands stay lazily loaded
  external: ["esbuild"], // a native binary beside its JS API
  platform: "node",
  target: "node20",
  format: "esm",
  sourcemap: "linked",
  logLevel: "warning",
  banner: { js: ESM_REQUIRE_BANNER },
});
// The inspector's page (tsserve dev serves dist/inspector/page.js and page.css): preact + htm for the browser.
await build({
  absWorkingDir: root,
  entryPoints: { page: "src/inspector/page/main.ts" },
  outdir: path.join(root, "dist", "inspector"),
  bundle: true,
  minify: true,
  platform: "browser",
  target: "es2022",
  format: "esm",
  logLevel: "warning",
});
if (process.argv[2] === undefined) await buildLibrary();

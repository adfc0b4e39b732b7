// Builds the library a user's project imports (dist/lib/ and dist/types/):
// `tsserve`, `tsserve/testing` and `tsserve/runtime` as plain ESM JavaScript
// (esbuild, one shared copy of every class across the three entries), and
// their type declarations (tsc), so a plain Node or TypeScript project needs
// no TypeScript loader to use the package. package.json's `exports` name them.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** The package's public entries: export subpath -> source module. */
export const LIBRARY_ENTRIES: Record<string, string> = {
  index: "src/index.ts",
  testing: "src/testing/index.ts",
  runtime: "src/runtime/index.ts",
};

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : fs.statSync(full).mtimeMs);
  }
  return newest;
}

/** Relative `.ts` specifiers in emitted declarations point at the `.d.ts` beside them: `./x.ts` -> `./x.js`. */
export function rewriteDeclarationSpecifiers(text: string): string {
  return text.replace(/((?:from|import)\s*\(?\s*["'])(\.{1,2}\/[^"']+?)\.ts(["'])/g, "$1$2.js$3");
}

export async function buildLibraryJs(outdir = path.join(root, "dist", "lib")): Promise<void> {
  fs.rmSync(outdir, { recursive: true, force: true });
  await build({
    absWorkingDir: root,
    entryPoints: LIBRARY_ENTRIES,
    outdir,
    bundle: true,
    splitting: true,
    packages: "external", // zod, yaml, ...: the user's project shares its copies with tsserve
    platform: "node",
    target: "node20",
    format: "esm",
    sourcemap: "linked",
    logLevel: "warning",
  });
}

export async function buildDeclarations(outdir = path.join(root, "dist", "types")): Promise<void> {
  const ts = (await import("typescript")).default;
  const options: import("typescript").CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    allowImportingTsExtensions: true,
    declaration: true,
    emitDeclarationOnly: true,
    skipLibCheck: true,
    esModuleInterop: true,
    resolveJsonModule: true,
    types: ["node"],
    typeRoots: [path.join(root, "node_modules", "@types")],
    rootDir: path.join(root, "src"),
    outDir: outdir,
  };
  const program = ts.createProgram(
    Object.values(LIBRARY_ENTRIES).map((f) => path.join(root, f)),
    options,
  );
  fs.rmSync(outdir, { recursive: true, force: true });
  const result = program.emit(undefined, (file, text) => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, rewriteDeclarationSpecifiers(text));
  });
  const errors = [...ts.getPreEmitDiagnostics(program), ...result.diagnostics].filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length > 0) {
    throw new Error(
      ts.formatDiagnostics(errors, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => root, getNewLine: () => "\n" }),
    );
  }
}

/** Builds what is stale: the JavaScript always (fast), the declarations when a source is newer than them (tsc takes ~15 s). */
export async function buildLibrary(): Promise<void> {
  await buildLibraryJs();
  const stamp = path.join(root, "dist", "types", "index.d.ts");
  const built = fs.statSync(stamp, { throwIfNoEntry: false })?.mtimeMs ?? 0;
  if (built <= newestMtime(path.join(root, "src"))) await buildDeclarations();
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await buildLibrary();

// Which CLI entry bin/tsserve.mjs runs. Commands that import a handler's
// TypeScript (render, init) need tsx and the CLI's own sources, so that the
// handler and the CLI share one copy of tsserve's classes; the others run the
// prebuilt CLI (scripts/build-cli.ts) while it is newer than every source, and
// always when installed as a dependency.
import fs from "node:fs";
import path from "node:path";

export const TYPESCRIPT_COMMANDS = new Set(["render", "init"]);

function newestMtime(dir) {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : fs.statSync(full).mtimeMs);
  }
  return newest;
}

/** `{ kind: "prebuilt", path }` or `{ kind: "sources", path }` for the command in argv. */
export function chooseEntry(root, argv) {
  const sources = { kind: "sources", path: path.join(root, "src", "cli", "main.ts") };
  if (TYPESCRIPT_COMMANDS.has(argv[0]) || process.env.TSSERVE_CLI_FROM_SOURCES === "1") return sources;
  const prebuilt = path.join(root, "dist", "cli", "main.mjs");
  const built = fs.statSync(prebuilt, { throwIfNoEntry: false });
  if (!built) return sources;
  // An installed package (npm gives every file the same mtime) runs what it ships, as built.
  if (root.split(path.sep).includes("node_modules")) return { kind: "prebuilt", path: prebuilt };
  const inputs = Math.max(newestMtime(path.join(root, "src")), fs.statSync(path.join(root, "package.json")).mtimeMs);
  return built.mtimeMs > inputs ? { kind: "prebuilt", path: prebuilt } : sources;
}

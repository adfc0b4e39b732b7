/**
 * The tsserve package's root folder, found from wherever this code runs: its
 * TypeScript sources (src/) or the prebuilt CLI (dist/cli.mjs).
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

function findPackageRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, "package.json")) && fs.existsSync(path.join(dir, "python_shim"))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`cannot find the tsserve package root above ${from}`);
  }
}

export const PACKAGE_ROOT = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)));

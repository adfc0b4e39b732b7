#!/usr/bin/env node
// The tsserve CLI: the prebuilt CLI when it is current, else its TypeScript
// sources through tsx (which also lets `render` and `init` import handlers
// written in TypeScript). See bin/entry.mjs.
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { register } from "node:module";
import { chooseEntry } from "./entry.mjs";

const SOURCE_CONDITION_HOOK =
  'export async function resolve(specifier, context, next) { return next(specifier, { ...context, conditions: [...context.conditions, "tsserve-source"] }); }';

const argv = process.argv.slice(2);
const entry = chooseEntry(path.resolve(path.dirname(fileURLToPath(import.meta.url)), ".."), argv);
if (entry.kind === "sources") {
  (await import("tsx/esm/api")).register();
  // A handler importing "tsserve" gets the sources the CLI runs from (package.json's
  // "tsserve-source" condition), so `instanceof Handler` holds across them.
  register(`data:text/javascript,${encodeURIComponent(SOURCE_CONDITION_HOOK)}`);
}
const { runMain } = await import(pathToFileURL(entry.path).href);
await runMain(argv);

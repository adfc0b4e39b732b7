#!/usr/bin/env node
// The tsserve CLI: the prebuilt CLI when it is current, else its TypeScript
// sources through tsx (which also lets `render` and `init` import handlers
// written in TypeScript). See bin/entry.mjs.
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chooseEntry } from "./entry.mjs";

const argv = process.argv.slice(2);
const entry = chooseEntry(path.resolve(path.dirname(fileURLToPath(import.meta.url)), ".."), argv);
if (entry.kind === "sources") (await import("tsx/esm/api")).register();
const { runMain } = await import(pathToFileURL(entry.path).href);
await runMain(argv);

#!/usr/bin/env node
// The tsserve CLI runs its TypeScript sources through tsx, so handlers written
// in TypeScript can be imported directly by `render` and `archive`.
import { register } from "tsx/esm/api";

register();
const { runMain } = await import("../src/cli/main.ts");
await runMain(process.argv.slice(2));

/**
 * Entry point of a handler bundle: `serve(HandlerClass)` claims stdout for the
 * protocol and runs until stdin closes or the parent process goes away.
 */
import type { HandlerClass } from "../handler/handler-class.ts";
import { claimStdout, openStdin } from "./stdio.ts";
import { startRuntime } from "./bridge-endpoint.ts";
import { fileURLToPath } from "node:url";
import { useBundleSourceMap } from "../handler/error-place.ts";
import { inspectorFromEnv } from "../inspector/journal-client.ts";

export { startRuntime } from "./bridge-endpoint.ts";
export { runBatch } from "./pipeline.ts";

const PARENT_POLL_MS = 250;

export function serve(Handler: HandlerClass): void {
  // Bundled, this module is part of handler.mjs: its stack frames map through handler.mjs.map.
  useBundleSourceMap(fileURLToPath(import.meta.url));
  const output = claimStdout();
  const runtime = startRuntime(Handler, { input: openStdin(), output, inspector: inspectorFromEnv() });
  const parent = process.ppid;
  // A SIGKILLed parent may leave stdin open in a grandchild; re-parenting tells us it is gone.
  const watch = setInterval(() => {
    if (process.ppid !== parent) {
      process.stderr.write("[tsserve] parent process exited; stopping\n");
      process.exit(1);
    }
  }, PARENT_POLL_MS);
  watch.unref();
  process.on("uncaughtException", (error) => {
    process.stderr.write(`[tsserve] uncaught exception: ${error.stack ?? error}\n`);
    process.exit(1);
  });
  void runtime.closed.then((code) => {
    output.end(() => process.exit(code));
  });
}

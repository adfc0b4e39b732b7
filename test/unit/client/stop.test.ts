// The stop ladder against stand-in processes: a "frontend" whose command line
// names TorchServe's main class, a child that ignores SIGTERM, and its child.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { workPaths } from "../../../src/client/paths.ts";
import { procInfo, processTree, stillRunning } from "../../../src/client/procs.ts";
import { runningServer, stopServer } from "../../../src/client/torchserve-process.ts";

const FRONTEND = `
const { spawn } = require("node:child_process");
const stubborn = 'process.on("SIGTERM", () => {}); require("node:child_process").spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" }); setInterval(() => {}, 1000);';
spawn(process.execPath, ["-e", stubborn], { stdio: "ignore" });
process.on("SIGTERM", () => process.exit(0));
setInterval(() => {}, 1000);
`;

/** The stand-in frontend and its two descendants, started in a working folder of their own. */
async function standIn() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "stop-"));
  const paths = workPaths({ TSSERVE_WORK_DIR: work });
  fs.mkdirSync(paths.tmp, { recursive: true });
  // The class name as an argument makes the stand-in look like TorchServe's frontend.
  const frontend = spawn(process.execPath, ["-e", FRONTEND, "org.pytorch.serve.ModelServer"], { stdio: "ignore", detached: true });
  frontend.unref();
  fs.writeFileSync(paths.pidFile, String(frontend.pid));
  let tree: ReturnType<typeof processTree> = [];
  for (let i = 0; i < 50 && tree.length < 3; i++) {
    await sleep(100);
    tree = processTree(frontend.pid!);
  }
  expect(tree).toHaveLength(3);
  expect(runningServer(paths)?.pid).toBe(frontend.pid);
  return { paths, frontend, tree };
}

describe("stopServer", () => {
  it("stops the frontend and SIGKILLs descendants that ignore SIGTERM, leaving none behind", async () => {
    const { paths, frontend, tree } = await standIn();
    const result = await stopServer({ paths, graceMs: 1500 });
    expect(result.wasRunning).toBe(true);
    expect(result.killed.length).toBeGreaterThanOrEqual(1);
    expect(tree.filter(stillRunning)).toEqual([]);
    expect(fs.existsSync(paths.pidFile)).toBe(false);
    expect(procInfo(frontend.pid!)).toBeUndefined();
  }, 20_000);

  it("gives what the frontend left behind a short grace once the frontend is gone, not the whole grace", async () => {
    const { paths, tree } = await standIn();
    const started = Date.now();
    const result = await stopServer({ paths, graceMs: 60_000 });
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(result.killed.length).toBeGreaterThanOrEqual(1);
    expect(tree.filter(stillRunning)).toEqual([]);
  }, 60_000);

  it("reports nothing running when there is no frontend", async () => {
    const paths = workPaths({ TSSERVE_WORK_DIR: fs.mkdtempSync(path.join(os.tmpdir(), "stop-")) });
    expect(await stopServer({ paths })).toEqual({ wasRunning: false, killed: [] });
  });
});

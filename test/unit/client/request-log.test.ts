import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runMain } from "../../../src/cli/main.ts";
import { formatRequestLine, readRequestLogs, requestLines } from "../../../src/client/request-log.ts";

const UUID = "249759d6-cab5-41b9-8095-d21caaba9f24";
const W = "W-9000-tiny_1.0";
// As TorchServe 0.12 writes them (the frontend's DEBUG lines, the worker's stdout and the Node child's stderr via the shim).
const TS_LOG = [
  `2026-12-08T00:24:28,758 [DEBUG] ${W} org.pytorch.serve.wlm.AsyncBatchAggregator - Adding job to jobs: ${UUID}`,
  `2026-12-08T00:24:28,759 [DEBUG] ${W} org.pytorch.serve.wlm.AsyncBatchAggregator - Adding job to jobs: ${UUID}0`,
  `2026-12-08T00:24:29,100 [DEBUG] ${W} org.pytorch.serve.wlm.AsyncBatchAggregator - Removing job: ${UUID}`,
].join("\n");
const MODEL_LOG = [
  `2026-12-08T00:24:28,900 [INFO ] ${W}-stdout MODEL_LOG - [node 77] [tsserve] [request client-7] handler error: TypeError: x`,
  `2026-12-08T00:24:28,901 [INFO ] ${W}-stdout MODEL_LOG - [node 77]     at formatPrompt (handler.ts:3:1)`,
  `2026-12-08T00:24:28,950 [INFO ] ${W}-stdout MODEL_LOG - tsserve: [request client-77] answered 200 after 9 ms`,
  `2026-12-08T00:24:29,000 [INFO ] ${W}-stdout MODEL_LOG - tsserve: [request client-7] answered 500 after 240 ms (TorchServe request ${UUID}): boom`,
].join("\n");

describe("one request's lines from every log", () => {
  it("prints a worker line that TorchServe copied into ts_log.log once, as the model log's", () => {
    const answer = MODEL_LOG.split("\n")[3]!;
    const lines = requestLines(
      new Map([
        ["ts_log.log", `${TS_LOG}\n${answer}`],
        ["model_log.log", MODEL_LOG],
      ]),
      "client-7",
    );
    expect(lines.filter((line) => line.text === answer).map((line) => line.file)).toEqual(["model_log.log"]);
  });

  it("finds a client's id (with the rest of a Node message), and through the answer line TorchServe's own id in the frontend's log, in time order", () => {
    const lines = requestLines(
      new Map([
        ["ts_log.log", TS_LOG],
        ["model_log.log", MODEL_LOG],
      ]),
      "client-7",
    );
    expect(lines.map((line) => [line.file, line.text.slice(11, 23)])).toEqual([
      ["ts_log.log", "00:24:28,758"],
      ["model_log.log", "00:24:28,900"],
      ["model_log.log", "00:24:28,901"], // the rest of the Node child's message: its stack
      ["model_log.log", "00:24:29,000"],
      ["ts_log.log", "00:24:29,100"],
    ]);
    expect(formatRequestLine(lines[1]!)).toBe(`model_log ${MODEL_LOG.split("\n")[0]}`);
  });

  it("finds a client's lines from TorchServe's own id (the answer's x-request-id header)", () => {
    const lines = requestLines(
      new Map([
        ["ts_log.log", TS_LOG],
        ["model_log.log", MODEL_LOG],
      ]),
      UUID,
    );
    expect(lines.map((line) => line.text.slice(11, 23))).toEqual([
      "00:24:28,758",
      "00:24:28,900",
      "00:24:28,901",
      "00:24:29,000",
      "00:24:29,100",
    ]);
  });

  it("finds TorchServe's own id, never a longer id that begins with it", () => {
    const lines = requestLines(new Map([["ts_log.log", TS_LOG]]), UUID);
    expect(lines.map((line) => line.text)).toEqual([TS_LOG.split("\n")[0], TS_LOG.split("\n")[2]]);
  });
});

describe("tsserve logs --request", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
    vi.restoreAllMocks();
  });

  async function logs(args: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation(((chunk: string) => out.push(chunk) > 0) as typeof process.stdout.write);
    vi.spyOn(process.stderr, "write").mockImplementation(((chunk: string) => err.push(chunk) > 0) as typeof process.stderr.write);
    const before = process.exitCode;
    process.exitCode = undefined;
    try {
      await runMain(["logs", ...args]);
      return { code: process.exitCode ?? 0, stdout: out.join(""), stderr: err.join("") };
    } finally {
      process.exitCode = before;
    }
  }

  it("prints the request's lines from a log folder, and says so when none names it", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tsserve-logs-"));
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, "ts_log.log"), TS_LOG);
    fs.writeFileSync(path.join(dir, "model_log.log"), MODEL_LOG);
    expect(readRequestLogs(dir).size).toBe(2);
    const found = await logs(["--request", "client-7", "--log-dir", dir]);
    expect(found.code).toBe(0);
    expect(found.stdout.trim().split("\n")).toHaveLength(5);
    const missing = await logs(["--request", "nobody", "--log-dir", dir]);
    expect([missing.code, missing.stdout, missing.stderr]).toEqual([1, "", `tsserve logs: no line names request nobody in ${dir}\n`]);
    expect((await logs(["--log-dir", dir])).code).toBe(2);
  });
});

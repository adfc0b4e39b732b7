// The bundled handler as a real child process: plain `node handler.mjs`, no
// node_modules beside it, stdout reserved for the protocol.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { bundleHandler, importHandlerBundle } from "../../../src/bundle/bundle.ts";
import { Connection } from "../../../src/protocol/connection.ts";
import { PROTOCOL_VERSION } from "../../../src/protocol/messages.ts";
import { Generate, Handle, Initialize, Ping, Shutdown } from "../../../src/protocol/methods.ts";
import { STDIN_READ_BYTES } from "../../../src/runtime/stdio.ts";
import { initializeParams } from "./initialize-params.ts";

let bundlePath: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  const outDir = mkdtempSync(path.join(tmpdir(), "tsserve-bundle-"));
  ({ bundlePath } = await bundleHandler({ handler: "test/fixtures/handlers/echo-handler.ts", outDir }));
});
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
});

function startChild() {
  const child = spawn(process.execPath, ["--enable-source-maps", bundlePath], {
    cwd: path.dirname(bundlePath),
    stdio: ["pipe", "pipe", "pipe"],
  });
  children.push(child);
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const noise: string[] = [];
  const connection = new Connection(child.stdout!, child.stdin!, { onNoise: (n) => noise.push(n) });
  connection.onRequest(Generate, ({ requests }) => ({
    outcomes: requests.map(() => ({
      ok: true as const,
      prompt: { tokens: [], token_ids: [], token_logprobs: [], top_logprobs: [], text_offset: [] },
      sequences: [
        {
          text: "!",
          finish_reason: "length" as const,
          cumulative_logprob: 0,
          logprobs: { tokens: [], token_ids: [], token_logprobs: [], top_logprobs: [], text_offset: [] },
        },
      ],
      prompt_tokens: 1,
      compute_time: 0,
    })),
  }));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, connection, noise, exited, stderr: () => stderr };
}

const init = initializeParams("echo", 1);

describe("handler bundle", () => {
  it("is one ESM file with a source map and nothing else", () => {
    expect(readdirSync(path.dirname(bundlePath)).sort()).toEqual(["handler.mjs", "handler.mjs.map"]);
    expect(readFileSync(`${bundlePath}.map`, "utf8")).toContain("echo-handler.ts");
  });

  it("names the handler class in its initialize answer (esbuild runs without keepNames)", async () => {
    const { connection } = startChild();
    await expect(connection.sendRequest(Initialize, init)).resolves.toEqual({ protocol_version: PROTOCOL_VERSION, handler: "EchoHandler" });
  });

  it("keeps console.log and process.stdout.write out of the protocol", async () => {
    const { connection, noise, stderr } = startChild();
    await connection.sendRequest(Initialize, init);
    const { responses } = await connection.sendRequest(Handle, { batch_id: 1, requests: [{ body: { prompt: "x", fault: "stdout" } }] });
    expect(responses[0]).toEqual({ ok: true, body: { texts: ["!"] } });
    expect(noise).toEqual([]);
    await new Promise((r) => setTimeout(r, 50));
    expect(stderr()).toContain("noise from console.log");
    expect(stderr()).toContain("raw noise");
  });

  it("exits with code 0 on stdin EOF after shutdown, and 1 on a bare EOF", async () => {
    const a = startChild();
    await a.connection.sendRequest(Initialize, init);
    await a.connection.sendRequest(Shutdown, {});
    a.child.stdin!.end();
    await expect(a.exited).resolves.toBe(0);
    const b = startChild();
    await b.connection.sendRequest(Initialize, init);
    b.child.stdin!.end();
    await expect(b.exited).resolves.toBe(1);
  });

  it("reads a message longer than its stdin buffer, over many reads, and one after it", async () => {
    const { connection } = startChild();
    await connection.sendRequest(Initialize, init);
    const payload = `${"é".repeat(STDIN_READ_BYTES)}x`; // over 2 MiB of UTF-8, split mid-character somewhere
    await expect(connection.sendRequest(Ping, { payload })).resolves.toEqual({ payload });
    await expect(connection.sendRequest(Ping, { payload: "after" })).resolves.toEqual({ payload: "after" });
  });

  it("serves from a stdin that is a file, not a pipe (process.stdin as the fallback)", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "tsserve-stdin-"));
    const requests = path.join(dir, "requests.jsonl");
    writeFileSync(
      requests,
      [
        { jsonrpc: "2.0", id: 1, method: "initialize", params: init },
        { jsonrpc: "2.0", id: 2, method: "ping", params: { payload: "from a file" } },
        { jsonrpc: "2.0", id: 3, method: "shutdown", params: {} },
      ]
        .map((m) => `${JSON.stringify(m)}\n`)
        .join(""),
    );
    const fd = openSync(requests, "r");
    const child = spawn(process.execPath, [bundlePath], { cwd: path.dirname(bundlePath), stdio: [fd, "pipe", "pipe"] });
    closeSync(fd);
    children.push(child);
    let stdout = "";
    child.stdout!.on("data", (d) => (stdout += d));
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(code).toBe(0);
    // Requests are served concurrently: initialize (async) may answer after ping.
    const answers = stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line))
      .sort((a, b) => a.id - b.id);
    expect(answers.map((a) => a.id)).toEqual([1, 2, 3]);
    expect(answers[1].result).toEqual({ payload: "from a file" });
  });

  it("points stack traces at the handler's .ts lines", async () => {
    const { connection, exited, stderr } = startChild();
    await connection.sendRequest(Initialize, init);
    void connection.sendRequest(Handle, { batch_id: 1, requests: [{ body: { prompt: "x", fault: "crash" } }] }).catch(() => {});
    await exited;
    expect(stderr()).toMatch(/echo-handler\.ts:\d+/);
  });
});

describe("importHandlerBundle", () => {
  it("never starts serving, even with imports running side by side", async () => {
    const dirs = Array.from({ length: 4 }, () => mkdtempSync(path.join(tmpdir(), "tsserve-import-")));
    const bundles = await Promise.all(dirs.map((outDir) => bundleHandler({ handler: "test/fixtures/handlers/echo-handler.ts", outDir })));
    // The bundle and its map do not depend on the folder they are written to (the archive tests build one per handler and copy it).
    const digest = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");
    for (const { bundlePath: p, mapPath } of bundles.slice(1)) {
      expect(digest(p)).toBe(digest(bundles[0]!.bundlePath));
      expect(digest(mapPath)).toBe(digest(bundles[0]!.mapPath));
    }
    const stdoutWrite = process.stdout.write;
    const classes = await Promise.all(bundles.map(({ bundlePath: p }) => importHandlerBundle(p)));
    expect(classes.map((c) => (c as { name: string }).name)).toEqual(Array(4).fill("EchoHandler"));
    // A bundle that served would have claimed stdout (claimStdout patches its write).
    expect(process.stdout.write).toBe(stdoutWrite);
    expect(Object.getOwnPropertySymbols(globalThis).map(String)).not.toContain("Symbol(tsserve.bundle.importOnly)");
  });
});

import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { FdLineSink } from "../../../src/runtime/stdio.ts";

const messages = [
  { jsonrpc: "2.0", id: 1, result: { text: "héllo ✓ 😀 \u2028" } },
  { jsonrpc: "2.0", method: "note", params: { big: "é".repeat(200_000) } }, // larger than the first scratch buffer
  { jsonrpc: "2.0", id: 2, result: {} },
];

describe("FdLineSink", () => {
  it("writes each message as one line of UTF-8 JSON, reusing and growing its buffer", () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "sink-")), "out.ndjson");
    const fd = fs.openSync(file, "w");
    const sink = new FdLineSink(fd);
    for (const m of messages) sink.writeLine(JSON.stringify(m));
    fs.closeSync(fd);
    const lines = fs.readFileSync(file, "utf8").split("\n");
    expect(lines.pop()).toBe("");
    expect(lines.map((l) => JSON.parse(l))).toEqual(messages);
  });

  it("waits out a full non-blocking pipe instead of failing or dropping bytes", async () => {
    // The reader starts late, so 3 MB cannot fit the pipe: writes hit EAGAIN until it drains.
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "sink-")), "out.ndjson");
    const reader = spawn("sh", ["-c", 'sleep 0.3; cat > "$0"', out], { stdio: ["pipe", "ignore", "inherit"] });
    const fd = (reader.stdin as unknown as { _handle: { fd: number } })._handle.fd;
    const big = { payload: "x".repeat(3_000_000) };
    new FdLineSink(fd).writeLine(JSON.stringify(big));
    reader.stdin.end();
    await new Promise((resolve) => reader.on("close", resolve));
    expect(fs.readFileSync(out, "utf8")).toBe(JSON.stringify(big) + "\n");
  });

  it("throws when the reading end is gone", async () => {
    const reader = spawn("sh", ["-c", "exec 0<&-; sleep 0.2"], { stdio: ["pipe", "ignore", "ignore"] });
    const fd = (reader.stdin as unknown as { _handle: { fd: number } })._handle.fd;
    await new Promise((resolve) => setTimeout(resolve, 100)); // the reader has closed its stdin
    expect(() => new FdLineSink(fd).writeLine("{}")).toThrow(/EPIPE/);
    await new Promise((resolve) => reader.on("close", resolve));
  });
});

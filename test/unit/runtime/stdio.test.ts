// openStdin: a pipe is read through net.Socket's onread buffer, anything else through process.stdin.
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const PROBE = [
  'import { openStdin } from "./src/runtime/stdio.ts";',
  "const input = openStdin(16);",
  'let got = "";',
  'input.on("data", (chunk) => (got += chunk.toString()));',
  'input.on("end", () => console.log(JSON.stringify({ fallback: input === process.stdin, got })));',
].join("\n");

function probe(stdin: "pipe" | number, input?: string) {
  const result = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", PROBE], {
    cwd: ROOT,
    stdio: [stdin, "pipe", "pipe"],
    input,
    encoding: "utf8",
    timeout: 30_000,
  });
  expect(result.status, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as { fallback: boolean; got: string };
}

describe("openStdin", () => {
  it("reads a pipe into its own small buffer, chunk after chunk, to the end", () => {
    const text = "a line longer than the sixteen-byte buffer\nand another\n";
    expect(probe("pipe", text)).toEqual({ fallback: false, got: text });
  });

  it("falls back to process.stdin for a file", () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), "tsserve-stdin-")), "in.txt");
    writeFileSync(file, "from a file\n");
    const fd = openSync(file, "r");
    try {
      expect(probe(fd)).toEqual({ fallback: true, got: "from a file\n" });
    } finally {
      closeSync(fd);
    }
  });
});

import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { LineReader, encodeMessage, type Frame } from "../../../src/protocol/framing.ts";
import { propertyRuns } from "../property-runs.ts";

const messages = (frames: Frame[]) => frames.filter((f) => f.kind === "message").map((f) => (f as { value: unknown }).value);

describe("LineReader", () => {
  it("joins a message split across chunks", () => {
    const reader = new LineReader();
    expect(reader.push(Buffer.from('{"a":'))).toEqual([]);
    expect(messages(reader.push(Buffer.from("1}\n")))).toEqual([{ a: 1 }]);
  });

  it("yields every message of a chunk that holds several", () => {
    const reader = new LineReader();
    expect(messages(reader.push(Buffer.from('{"a":1}\n{"b":2}\r\n{"c":3}\n')))).toEqual([{ a: 1 }, { b: 2 }, { c: 3 }]);
  });

  it("decodes a UTF-8 character split between chunks", () => {
    const bytes = Buffer.from(encodeMessage({ text: "héllo ✓ 😀" }));
    const reader = new LineReader();
    const frames: Frame[] = [];
    for (let i = 0; i < bytes.length; i++) frames.push(...reader.push(bytes.subarray(i, i + 1)));
    expect(messages(frames)).toEqual([{ text: "héllo ✓ 😀" }]);
  });

  it("reports a line that is not JSON and goes on", () => {
    const reader = new LineReader();
    const frames = reader.push(Buffer.from('hello from console.log\n{"ok":true}\n'));
    expect(frames[0]).toMatchObject({ kind: "invalid", line: "hello from console.log" });
    expect(messages(frames)).toEqual([{ ok: true }]);
  });

  it("refuses a message over the size cap, clears its buffer, and reads the next one", () => {
    const reader = new LineReader(64);
    const big = JSON.stringify({ x: "y".repeat(200) });
    const frames = [...reader.push(Buffer.from(big.slice(0, 100))), ...reader.push(Buffer.from(`${big.slice(100)}\n{"n":1}\n`))];
    expect(frames[0]).toMatchObject({ kind: "oversize" });
    expect(reader.pendingBytes).toBe(0);
    expect(messages(frames)).toEqual([{ n: 1 }]);
  });

  it("reads a 1 MiB message delivered in 64 KiB chunks", () => {
    const value = { blob: "z".repeat(1 << 20) };
    const bytes = Buffer.from(encodeMessage(value));
    const reader = new LineReader();
    const frames: Frame[] = [];
    for (let i = 0; i < bytes.length; i += 65536) frames.push(...reader.push(bytes.subarray(i, i + 65536)));
    expect(messages(frames)).toEqual([value]);
  });

  it("recovers any sequence of messages, however the bytes are cut (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.jsonValue(), { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (values, cuts) => {
        const bytes = Buffer.from(values.map(encodeMessage).join(""));
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const reader = new LineReader();
        const frames: Frame[] = [];
        let last = 0;
        for (const p of [...points, bytes.length]) {
          frames.push(...reader.push(bytes.subarray(last, p)));
          last = p;
        }
        expect(messages(frames)).toEqual(values.map((v) => JSON.parse(JSON.stringify(v))));
      }),
      { numRuns: propertyRuns(10_000) },
    );
  });
});

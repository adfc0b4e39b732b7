/**
 * Newline-delimited JSON framing. Works on bytes so a UTF-8 character split
 * across chunks is decoded only once its line is complete; each chunk is
 * scanned once for newlines (no rescans of the buffered prefix).
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export type Frame =
  | { kind: "message"; value: unknown }
  | { kind: "invalid"; line: string; error: string }
  | { kind: "oversize"; bytes: number };

export class LineReader {
  private parts: Buffer[] = [];
  private buffered = 0;
  /** True while skipping the rest of an oversize line. */
  private discarding = false;

  constructor(private readonly maxBytes = DEFAULT_MAX_MESSAGE_BYTES) {}

  /** Frames completed by this chunk, in order. */
  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      const tail = chunk.subarray(start, nl);
      if (this.discarding) {
        this.discarding = false;
      } else if (this.buffered + tail.length > this.maxBytes) {
        frames.push({ kind: "oversize", bytes: this.buffered + tail.length });
      } else {
        const line = this.parts.length === 0 ? tail : Buffer.concat([...this.parts, tail], this.buffered + tail.length);
        const frame = decodeLine(line);
        if (frame) frames.push(frame);
      }
      this.parts = [];
      this.buffered = 0;
      start = nl + 1;
    }
    const rest = chunk.subarray(start);
    if (rest.length > 0 && !this.discarding) {
      if (this.buffered + rest.length > this.maxBytes) {
        frames.push({ kind: "oversize", bytes: this.buffered + rest.length });
        this.parts = [];
        this.buffered = 0;
        this.discarding = true;
      } else {
        this.parts.push(rest);
        this.buffered += rest.length;
      }
    }
    return frames;
  }

  get pendingBytes(): number {
    return this.buffered;
  }
}

function decodeLine(bytes: Buffer): Frame | undefined {
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === 13) end -= 1;
  if (end === 0) return undefined;
  const line = bytes.toString("utf8", 0, end);
  try {
    return { kind: "message", value: JSON.parse(line) };
  } catch (error) {
    return { kind: "invalid", line: line.length > 200 ? `${line.slice(0, 200)}…` : line, error: (error as Error).message };
  }
}

/** One message as one line. JSON.stringify escapes U+2028/2029 and never emits a raw newline. */
export function encodeMessage(message: unknown): string {
  return JSON.stringify(message) + "\n";
}

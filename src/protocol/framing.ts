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

/** Accumulation buffers up to this size are kept for the next long line (warm memory, no page faults). */
const KEEP_BUFFER_BYTES = 4 * 1024 * 1024;

export class LineReader {
  /**
   * The start of a line that spans chunks, copied into one reusable buffer
   * (`acc[0..buffered)`): a long line is copied once, into memory that is
   * already mapped, instead of being concatenated from its chunks.
   */
  private acc: Buffer = Buffer.alloc(0);
  private buffered = 0;
  /** True while skipping the rest of an oversize line. */
  private discarding = false;

  constructor(private readonly maxBytes = DEFAULT_MAX_MESSAGE_BYTES) {}

  /** Frames completed by this chunk, in order. */
  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      const tailLength = nl - start;
      if (this.discarding) {
        this.discarding = false;
      } else if (this.buffered + tailLength > this.maxBytes) {
        frames.push({ kind: "oversize", bytes: this.buffered + tailLength });
      } else {
        let line: Buffer;
        if (this.buffered === 0) {
          line = chunk.subarray(start, nl);
        } else {
          this.append(chunk, start, nl);
          line = this.acc.subarray(0, this.buffered);
        }
        const frame = decodeLine(line);
        if (frame) frames.push(frame);
      }
      this.reset();
      start = nl + 1;
    }
    const restLength = chunk.length - start;
    if (restLength > 0 && !this.discarding) {
      if (this.buffered + restLength > this.maxBytes) {
        frames.push({ kind: "oversize", bytes: this.buffered + restLength });
        this.reset();
        this.discarding = true;
      } else {
        this.append(chunk, start, chunk.length);
      }
    }
    return frames;
  }

  get pendingBytes(): number {
    return this.buffered;
  }

  private append(chunk: Buffer, from: number, to: number): void {
    const needed = this.buffered + (to - from);
    if (needed > this.acc.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, Math.min(this.acc.length * 2, this.maxBytes), 64 * 1024));
      this.acc.copy(grown, 0, 0, this.buffered);
      this.acc = grown;
    }
    chunk.copy(this.acc, this.buffered, from, to);
    this.buffered = needed;
  }

  private reset(): void {
    this.buffered = 0;
    if (this.acc.length > KEEP_BUFFER_BYTES) this.acc = Buffer.alloc(0);
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
  return `${JSON.stringify(message)}\n`;
}

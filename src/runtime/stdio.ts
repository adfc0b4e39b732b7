/**
 * stdout belongs to the protocol. Anything else that writes to it (console.log
 * in handler code, a chatty dependency) is sent to stderr, which TorchServe
 * keeps in the model log.
 */
import fs from "node:fs";
import type { LineSink } from "../protocol/framing.ts";

/** Scratch buffers up to this size are kept for the next message (memory already mapped). */
const KEEP_SCRATCH_BYTES = 16 * 1024 * 1024;
const EAGAIN_WAIT_MS = 1;

/**
 * Writes each message straight to a file descriptor: the JSON text is
 * encoded into a reused buffer together with its newline, then written
 * synchronously. A stream would first join text and newline into a rope that
 * V8 must flatten, then encode it into fresh memory: three times the work
 * for a 1 MB message.
 */
export class FdLineSink implements LineSink {
  private scratch = Buffer.allocUnsafe(64 * 1024);
  private readonly pause = new Int32Array(new SharedArrayBuffer(4));

  constructor(private readonly fd: number) {}

  writeLine(json: string): void {
    // A UTF-16 code unit takes at most 3 bytes of UTF-8.
    const room = json.length * 3 + 1;
    let buffer = this.scratch;
    if (room > buffer.length) {
      buffer = Buffer.allocUnsafe(room);
      if (room <= KEEP_SCRATCH_BYTES) this.scratch = buffer;
    }
    const length = buffer.write(json, 0, "utf8");
    buffer[length] = 0x0a;
    this.writeAll(buffer, length + 1);
  }

  private writeAll(buffer: Buffer, length: number): void {
    let offset = 0;
    while (offset < length) {
      try {
        offset += fs.writeSync(this.fd, buffer, offset, length - offset);
      } catch (error) {
        // A non-blocking pipe that is full: the shim drains it while it waits on us.
        if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error;
        Atomics.wait(this.pause, 0, 0, EAGAIN_WAIT_MS);
      }
    }
  }
}

/** Sends everything else written to stdout to stderr; returns the protocol's sink on fd 1. */
export function claimStdout(): FdLineSink {
  const stdout = process.stdout;
  const toStderr = process.stderr.write.bind(process.stderr);
  stdout.write = ((chunk: unknown, encoding?: unknown, callback?: unknown) =>
    toStderr(chunk as string, encoding as BufferEncoding, callback as () => void)) as typeof stdout.write;
  return new FdLineSink(1);
}

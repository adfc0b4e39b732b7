/**
 * stdout belongs to the protocol. Anything else that writes to it (console.log
 * in handler code, a chatty dependency) is sent to stderr, which TorchServe
 * keeps in the model log.
 */
import { Writable } from "node:stream";

export function claimStdout(): Writable {
  const stdout = process.stdout;
  const protocolWrite = stdout.write.bind(stdout);
  const toStderr = process.stderr.write.bind(process.stderr);
  stdout.write = ((chunk: unknown, encoding?: unknown, callback?: unknown) =>
    toStderr(chunk as string, encoding as BufferEncoding, callback as () => void)) as typeof stdout.write;
  // Strings go to the stdout handle as they are: libuv encodes them straight
  // into the write request instead of a Buffer allocated here first.
  return new Writable({
    decodeStrings: false,
    write(chunk: Buffer | string, encoding, callback) {
      if (typeof chunk === "string") protocolWrite(chunk, encoding, (error?: Error | null) => callback(error ?? null));
      else protocolWrite(chunk, (error?: Error | null) => callback(error ?? null));
    },
  });
}

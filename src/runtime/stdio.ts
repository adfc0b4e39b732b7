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
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      protocolWrite(chunk, (error?: Error | null) => callback(error ?? null));
    },
  });
}

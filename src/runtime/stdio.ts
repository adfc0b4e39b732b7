/**
 * The child's stdio. stdout belongs to the protocol: anything else that writes
 * to it (console.log in handler code, a chatty dependency) is sent to stderr,
 * which TorchServe keeps in the model log. stdin is read straight into one
 * reused buffer.
 */
import { EventEmitter } from "node:events";
import { Socket, type OnReadOpts, type SocketConstructorOpts } from "node:net";
import { Writable } from "node:stream";
import type { ByteSource } from "../protocol/connection.ts";

/** The shim's pipe holds 1 MiB (rpc.py grows it): one read can take all of it. */
export const STDIN_READ_BYTES = 1 << 20;

/**
 * The protocol's input. When stdin is a pipe or a socket, libuv reads into one
 * buffer kept for the life of the process (net.Socket's `onread`), so a large
 * message arrives in one piece instead of 64 KiB chunks allocated anew, and
 * no stream machinery runs per read. Each chunk is lent to the `data`
 * listeners only until they return (the LineReader copies what it keeps).
 * Anything else (a file, a TTY): process.stdin. Handler code must not read
 * stdin either way: it is the protocol's.
 */
export function openStdin(bufferBytes = STDIN_READ_BYTES): ByteSource {
  const source = new EventEmitter();
  const buffer = Buffer.allocUnsafe(bufferBytes);
  const onread: OnReadOpts = {
    buffer,
    callback: (bytes) => {
      source.emit("data", buffer.subarray(0, bytes));
      return true; // false would pause the socket
    },
  };
  let socket: Socket;
  try {
    // `onread` is a constructor option (Node's docs, net.md); @types/node 20 lists it for connect() only.
    socket = new Socket({ fd: 0, readable: true, writable: false, onread } as SocketConstructorOpts);
  } catch {
    return process.stdin;
  }
  socket.on("end", () => source.emit("end"));
  socket.on("error", (error) => source.emit("error", error));
  return source as unknown as ByteSource;
}

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

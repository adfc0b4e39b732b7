/**
 * The child's stdio. stdout belongs to the protocol: anything else that writes
 * to it (console.log in handler code, a chatty dependency) is sent to stderr,
 * which TorchServe keeps in the model log. stdin is read straight into one
 * reused buffer.
 */
import { EventEmitter } from "node:events";
import { Socket, type OnReadOpts, type SocketConstructorOpts } from "node:net";
import type { ByteSink, ByteSource } from "../protocol/connection.ts";

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
  return source;
}

/** The protocol's output, and the end of it when the runtime stops. */
interface ProtocolOutput extends ByteSink {
  end(callback: () => void): void;
}

export function claimStdout(): ProtocolOutput {
  const stdout = process.stdout;
  const protocolWrite = stdout.write.bind(stdout);
  const toStderr = process.stderr.write.bind(process.stderr);
  stdout.write = ((chunk: unknown, encoding?: unknown, callback?: unknown) =>
    toStderr(chunk as string, encoding as BufferEncoding, callback as () => void)) as typeof stdout.write;
  // Protocol lines go to stdout's own write, with no stream layer of ours on top
  // (a Writable wrapper here cost the child ~0.1 ms of CPU per request); strings
  // are handed to the handle as they are and libuv encodes them into the write request.
  return {
    write: (line) => protocolWrite(line),
    on: (event, listener) => stdout.on(event, listener),
    end: (callback) => stdout.end(callback),
  };
}

/**
 * Error codes that cross the wire (JSON-RPC `error.code`). -32768..-32000 is
 * reserved by JSON-RPC; tsserve's own codes live in -32099..-32000.
 */
export const ErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  /** Handshake with a different protocol version. */
  ProtocolVersionMismatch: -32001,
  /** A message larger than the framing's size cap. */
  MessageTooLarge: -32002,
  /** The connection closed while the request was pending. */
  ConnectionClosed: -32003,
  /** A request arrived before `initialize`. */
  NotInitialized: -32004,
  /** The handler failed (its message is in `message`). */
  HandlerError: -32005,
  /** The request was cancelled by its sender (a `notifications/cancelled`) before it finished. */
  RequestCancelled: -32006,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** A protocol error: carries `code`, `message`, `data` and crosses the wire. */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = "RpcError";
  }
  toJSON() {
    return this.data === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, data: this.data };
  }
}

/** A local error (the peer went away, a timeout): never crosses the wire. */
export class ConnectionError extends Error {
  constructor(
    readonly reason: "closed" | "timeout" | "disposed" | "cancelled",
    message: string,
  ) {
    super(message);
    this.name = "ConnectionError";
  }
}

/** The text of an AbortSignal's reason. */
export function abortReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason.message;
  return reason === undefined ? "cancelled" : String(reason);
}

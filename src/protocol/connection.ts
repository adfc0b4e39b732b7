/**
 * A JSON-RPC 2.0 peer over a pair of byte streams. Both sides serve and send
 * requests at once: while a request of ours is pending, the other side's
 * requests are answered. Only method descriptors from ./methods.ts are accepted.
 */
import type { z } from "zod";
import { ConnectionError, ErrorCode, RpcError, abortReason } from "./errors.ts";

export { abortReason };
import { LineReader, encodeMessage, type Frame, DEFAULT_MAX_MESSAGE_BYTES } from "./framing.ts";
import { parseEnvelope } from "./envelope.ts";
import type { JsonRpcRequest, RequestId } from "./messages.ts";
import { Cancelled, type NotificationType, type RequestType } from "./methods.ts";

type State = "listening" | "closed";

/** What a connection reads from: a Readable, or anything that emits `data` (Buffers), `end` and `error` alike. */
export interface ByteSource {
  on(event: "data", listener: (chunk: Buffer) => void): unknown;
  on(event: "end", listener: () => void): unknown;
  on(event: "error", listener: (error: Error) => void): unknown;
}

/** What a connection writes to: a Writable, or anything that takes strings and emits `error` alike. */
export interface ByteSink {
  write(chunk: string): unknown;
  on(event: "error", listener: (error: Error) => void): unknown;
}

/** What a request handler gets besides its params: the signal that aborts when the peer cancels the request (or the connection closes). */
interface RequestExtra {
  readonly requestId: RequestId;
  readonly signal: AbortSignal;
}

type RequestHandler = (params: unknown, extra: RequestExtra) => unknown | Promise<unknown>;
type NotificationHandler = (params: unknown) => void;

interface Pending {
  method: string;
  result: z.ZodType;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer?: NodeJS.Timeout;
  /** Removes the abort listener of the caller's signal. */
  release?: () => void;
}

interface ConnectionOptions {
  maxMessageBytes?: number;
  /** Lines that are not protocol messages (noise on the channel); default: ignored. */
  onNoise?: (description: string) => void;
  /**
   * Which incoming payloads are checked against the descriptors' schemas:
   * `true`/"all" (the default) params and results, "params" only the params of
   * requests and notifications the peer sends (the answers to our own requests
   * are trusted: the Python shim's are checked against the same schemas in its
   * tests), `false`/"none" neither. The JSON-RPC envelope is always checked.
   */
  validate?: boolean | "all" | "params" | "none";
}

export class Connection {
  private state: State = "listening";
  private nextId = 1;
  private readonly pending = new Map<RequestId, Pending>();
  /** The peer's requests being served: the controller that a cancellation (or closing) aborts. */
  private readonly serving = new Map<RequestId, AbortController>();
  private readonly requestHandlers = new Map<
    string,
    { params: z.ZodType; accepts?: (params: unknown) => boolean; handler: RequestHandler }
  >();
  private readonly notificationHandlers = new Map<string, { params: z.ZodType; handler: NotificationHandler }>();
  private readonly reader: LineReader;
  private readonly closeListeners: Array<() => void> = [];
  private readonly validateParams: boolean;
  private readonly validateResults: boolean;

  constructor(
    input: ByteSource,
    private readonly output: ByteSink,
    private readonly options: ConnectionOptions = {},
  ) {
    this.reader = new LineReader(options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES);
    const validate = options.validate ?? true;
    this.validateParams = validate === true || validate === "all" || validate === "params";
    this.validateResults = validate === true || validate === "all";
    input.on("data", (chunk: Buffer) => {
      for (const frame of this.reader.push(chunk)) this.dispatch(frame);
    });
    input.on("end", () => this.close());
    input.on("error", () => this.close());
    output.on("error", () => this.close());
  }

  get isOpen(): boolean {
    return this.state === "listening";
  }

  onClose(listener: () => void): void {
    if (this.state === "closed") listener();
    else this.closeListeners.push(listener);
  }

  onRequest<P extends z.ZodType, R extends z.ZodType>(
    type: RequestType<P, R>,
    handler: (params: z.infer<P>, extra: RequestExtra) => z.input<R> | Promise<z.input<R>>,
  ): void {
    this.requestHandlers.set(type.method, { params: type.params, accepts: type.accepts, handler: handler as RequestHandler });
  }

  onNotification<P extends z.ZodType>(type: NotificationType<P>, handler: (params: z.infer<P>) => void): void {
    this.notificationHandlers.set(type.method, { params: type.params, handler: handler as NotificationHandler });
  }

  sendRequest<P extends z.ZodType, R extends z.ZodType>(
    type: RequestType<P, R>,
    params: z.input<P>,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<z.infer<R>> {
    if (this.state !== "listening") {
      return Promise.reject(new ConnectionError("closed", `cannot send ${type.method}: connection is closed`));
    }
    const { signal } = options;
    if (signal?.aborted) {
      return Promise.reject(new ConnectionError("cancelled", `${type.method} not sent: ${abortReason(signal)}`));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const entry: Pending = { method: type.method, result: type.result, resolve: resolve as (value: unknown) => void, reject };
      if (signal) {
        // As the MCP SDK does: the peer is told (it stops the work), and the caller is answered now.
        const onAbort = () => {
          if (!this.pending.delete(id)) return;
          clearTimeout(entry.timer);
          const reason = abortReason(signal);
          this.sendNotification(Cancelled, { request_id: id, reason });
          reject(new ConnectionError("cancelled", `${type.method} cancelled: ${reason}`));
        };
        signal.addEventListener("abort", onAbort, { once: true });
        entry.release = () => signal.removeEventListener("abort", onAbort);
      }
      if (options.timeoutMs !== undefined) {
        entry.timer = setTimeout(() => {
          this.pending.delete(id);
          entry.release?.();
          reject(new ConnectionError("timeout", `${type.method} got no answer within ${options.timeoutMs} ms`));
        }, options.timeoutMs);
        entry.timer.unref();
      }
      this.pending.set(id, entry);
      this.write({ jsonrpc: "2.0", id, method: type.method, params });
    });
  }

  sendNotification<P extends z.ZodType>(type: NotificationType<P>, params: z.input<P>): void {
    if (this.state === "listening") this.write({ jsonrpc: "2.0", method: type.method, params });
  }

  /** Stops listening; every pending request is rejected. */
  close(): void {
    if (this.state === "closed") return;
    this.state = "closed";
    for (const controller of this.serving.values()) controller.abort(new ConnectionError("closed", "the connection closed"));
    for (const [id, entry] of this.pending) {
      clearTimeout(entry.timer);
      entry.release?.();
      entry.reject(new ConnectionError("closed", `connection closed while ${entry.method} was pending`));
      this.pending.delete(id);
    }
    for (const listener of this.closeListeners.splice(0)) listener();
  }

  private write(message: unknown): void {
    // Node's stream buffers writes in order; callers need no back-pressure
    // signal because every request's answer waits on the peer anyway.
    this.output.write(encodeMessage(message));
  }

  private dispatch(frame: Frame): void {
    if (frame.kind === "oversize") {
      this.options.onNoise?.(`dropped a message of ${frame.bytes} bytes (over the size cap)`);
      this.write({
        jsonrpc: "2.0",
        id: null,
        error: { code: ErrorCode.MessageTooLarge, message: `message of ${frame.bytes} bytes exceeds the size cap` },
      });
      return;
    }
    if (frame.kind === "invalid") {
      this.options.onNoise?.(`not JSON: ${frame.line}`);
      return;
    }
    const message = parseEnvelope(frame.value);
    if (message === undefined) {
      this.options.onNoise?.(`not a JSON-RPC message: ${JSON.stringify(frame.value).slice(0, 200)}`);
      return;
    }
    if ("method" in message) {
      if ("id" in message) void this.serveRequest(message as JsonRpcRequest);
      else if (message.method === Cancelled.method) this.cancelServed(message.params);
      else this.serveNotification(message.method, message.params);
    } else {
      this.settle(message);
    }
  }

  /** The peer cancelled a request of its own that we serve: abort its signal (its answer still goes out). */
  private cancelServed(params: unknown): void {
    const parsed = Cancelled.params.safeParse(params ?? {});
    if (!parsed.success) {
      this.options.onNoise?.(`invalid params for notification ${Cancelled.method}`);
      return;
    }
    this.serving.get(parsed.data.request_id)?.abort(new ConnectionError("cancelled", parsed.data.reason ?? "cancelled by the peer"));
  }

  private async serveRequest(request: JsonRpcRequest): Promise<void> {
    const entry = this.requestHandlers.get(request.method);
    const controller = new AbortController();
    this.serving.set(request.id, controller);
    try {
      if (!entry) throw new RpcError(ErrorCode.MethodNotFound, `unknown method ${request.method}`);
      const raw = request.params ?? {};
      const params = !this.validateParams || entry.accepts?.(raw) ? { success: true as const, data: raw } : entry.params.safeParse(raw);
      if (!params.success) throw new RpcError(ErrorCode.InvalidParams, `invalid params for ${request.method}: ${params.error.message}`);
      const result = await entry.handler(params.data, { requestId: request.id, signal: controller.signal });
      if (controller.signal.aborted)
        throw new RpcError(ErrorCode.RequestCancelled, `${request.method} was cancelled: ${abortReason(controller.signal)}`);
      this.write({ jsonrpc: "2.0", id: request.id, result });
    } catch (error) {
      const rpc =
        error instanceof RpcError
          ? error
          : controller.signal.aborted
            ? new RpcError(ErrorCode.RequestCancelled, `${request.method} was cancelled: ${abortReason(controller.signal)}`)
            : new RpcError(ErrorCode.InternalError, (error as Error)?.message ?? String(error));
      this.write({ jsonrpc: "2.0", id: request.id, error: rpc.toJSON() });
    } finally {
      this.serving.delete(request.id);
    }
  }

  private serveNotification(method: string, params: unknown): void {
    const entry = this.notificationHandlers.get(method);
    if (!entry) return;
    const parsed = this.validateParams ? entry.params.safeParse(params ?? {}) : { success: true as const, data: params };
    if (parsed.success) entry.handler(parsed.data);
    else this.options.onNoise?.(`invalid params for notification ${method}`);
  }

  private settle(message: { id: RequestId | null; result?: unknown; error?: { code: number; message: string; data?: unknown } }): void {
    if (message.id === null) {
      if (message.error) this.options.onNoise?.(`peer error: ${message.error.message}`);
      return;
    }
    const entry = this.pending.get(message.id);
    if (!entry) return;
    this.pending.delete(message.id);
    clearTimeout(entry.timer);
    entry.release?.();
    if (message.error) {
      entry.reject(new RpcError(message.error.code, message.error.message, message.error.data));
      return;
    }
    if (!this.validateResults) {
      entry.resolve(message.result);
      return;
    }
    const result = entry.result.safeParse(message.result);
    if (result.success) entry.resolve(result.data);
    else entry.reject(new RpcError(ErrorCode.InvalidParams, `invalid result for ${entry.method}: ${result.error.message}`));
  }
}

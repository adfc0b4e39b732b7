/**
 * One descriptor per RPC method: its wire name, which side serves it, and the
 * schemas of its params and result. Connections accept only these descriptors.
 */
import type { z } from "zod";
import * as m from "./messages.ts";
import { isHandleParams } from "./guards.ts";

/** Which side serves a method; "both": either sends it to the other (a cancellation). */
type Side = "node" | "shim" | "both";

export interface RequestType<P extends z.ZodType, R extends z.ZodType> {
  readonly kind: "request";
  readonly method: string;
  /** The side that answers the request. */
  readonly servedBy: Side;
  readonly params: P;
  readonly result: R;
  /** A hand-written check (guards.ts) that vouches for params `params` accepts unchanged; when it says no, `params` decides. */
  readonly accepts?: (params: unknown) => boolean;
}

export interface NotificationType<P extends z.ZodType> {
  readonly kind: "notification";
  readonly method: string;
  readonly servedBy: Side;
  readonly params: P;
}

const request = <P extends z.ZodType, R extends z.ZodType>(
  method: string,
  servedBy: Side,
  params: P,
  result: R,
  accepts?: (params: unknown) => boolean,
): RequestType<P, R> => ({ kind: "request", method, servedBy, params, result, ...(accepts ? { accepts } : {}) });
const notification = <P extends z.ZodType>(method: string, servedBy: Side, params: P): NotificationType<P> => ({
  kind: "notification",
  method,
  servedBy,
  params,
});

export const Initialize = request("initialize", "node", m.InitializeParams, m.InitializeResult);
export const Handle = request("handle", "node", m.HandleParams, m.HandleResult, isHandleParams);
export const Shutdown = request("shutdown", "node", m.ShutdownParams, m.ShutdownResult);
export const Ping = request("ping", "node", m.PingParams, m.PingResult);
export const GenerationDelta = notification("generation/delta", "node", m.GenerationDeltaParams);

export const Generate = request("generate", "shim", m.GenerateParams, m.GenerateResult);
export const Tokenize = request("tokenize", "shim", m.TokenizeParams, m.TokenizeResult);
export const Detokenize = request("detokenize", "shim", m.DetokenizeParams, m.DetokenizeResult);
export const StreamChunk = notification("stream/chunk", "shim", m.StreamChunkParams);
export const Cancelled = notification("notifications/cancelled", "both", m.CancelledParams);

export const ALL_METHODS = [
  Initialize,
  Handle,
  Shutdown,
  Ping,
  GenerationDelta,
  Generate,
  Tokenize,
  Detokenize,
  StreamChunk,
  Cancelled,
] as const;

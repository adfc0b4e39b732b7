/**
 * The JSON-RPC envelope check on the hot path: the same verdict as
 * `JsonRpcMessage.safeParse` (messages.ts, the definition) without building a
 * copy of the message — a few property reads instead of a zod union of four
 * strict objects. test/unit/protocol/envelope.test.ts holds the two to the
 * same answers on generated messages.
 */
import type { JsonRpcMessage } from "./messages.ts";
import { isPlainObject } from "./guards.ts";

const isId = (value: unknown): boolean => typeof value === "string" || (typeof value === "number" && Number.isSafeInteger(value));

function isErrorObject(error: unknown): boolean {
  if (!isPlainObject(error)) return false;
  for (const key of Object.keys(error)) if (key !== "code" && key !== "message" && key !== "data") return false;
  return typeof error.code === "number" && Number.isSafeInteger(error.code) && typeof error.message === "string";
}

/** The message itself when it is a JSON-RPC 2.0 request, notification, success or error; else undefined. */
export function parseEnvelope(m: unknown): JsonRpcMessage | undefined {
  if (!isPlainObject(m)) return undefined;
  if (m.jsonrpc !== "2.0") return undefined;
  let hasId = false;
  let hasMethod = false;
  let hasParams = false;
  let hasResult = false;
  let hasError = false;
  for (const key of Object.keys(m)) {
    switch (key) {
      case "jsonrpc":
        break;
      case "id":
        hasId = true;
        break;
      case "method":
        hasMethod = true;
        break;
      case "params":
        hasParams = true;
        break;
      case "result":
        hasResult = true;
        break;
      case "error":
        hasError = true;
        break;
      default:
        return undefined;
    }
  }
  if (hasMethod) {
    if (hasResult || hasError || typeof m.method !== "string") return undefined;
    if (hasId && !isId(m.id)) return undefined;
    return m as JsonRpcMessage;
  }
  if (hasParams || !hasId) return undefined;
  if (hasError) {
    if (hasResult || !(m.id === null || isId(m.id)) || !isErrorObject(m.error)) return undefined;
    return m as JsonRpcMessage;
  }
  return isId(m.id) ? (m as JsonRpcMessage) : undefined;
}

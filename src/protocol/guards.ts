/**
 * Hand-written checks for the params of the hottest messages, in front of the
 * descriptors' zod schemas (messages.ts, the definitions). A guard says yes
 * only to params its schema accepts and would hand back unchanged; when it
 * says no, the schema decides and names what is wrong.
 * test/unit/protocol/guards.test.ts holds each guard to its schema.
 */

/** A JSON object: not null, not an array. */
export const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

function isIncomingRequest(value: unknown): boolean {
  if (!isPlainObject(value) || !("body" in value)) return false;
  for (const key in value) {
    if (key === "body") continue;
    if ((key !== "body_error" && key !== "request_id" && key !== "url_path") || typeof value[key] !== "string") return false;
  }
  return true;
}

/** `handle` params: `{batch_id, requests: [{body, body_error?, request_id?, url_path?}]}`, nothing else. */
export function isHandleParams(value: unknown): boolean {
  if (!isPlainObject(value)) return false;
  for (const key in value) if (key !== "batch_id" && key !== "requests") return false;
  return (
    typeof value.batch_id === "number" &&
    Number.isSafeInteger(value.batch_id) &&
    Array.isArray(value.requests) &&
    value.requests.every(isIncomingRequest)
  );
}

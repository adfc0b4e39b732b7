/**
 * Server-sent events as OpenAI's streaming APIs send them: each event one
 * `data: <json>` line and a blank line; the stream ends with `data: [DONE]`.
 */
import { RawBody } from "../handler/raw-body.ts";

export const SSE_CONTENT_TYPE = "text/event-stream";

/** One event carrying `data` as JSON. */
export function sseEvent(data: unknown): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}

/** The event that closes an OpenAI stream. */
export const SSE_DONE = "data: [DONE]\n\n";

/** Events as one body to send (a chunk, or the last part of the stream). */
export function sseBody(events: readonly string[]): RawBody {
  return new RawBody(events.join(""), SSE_CONTENT_TYPE);
}

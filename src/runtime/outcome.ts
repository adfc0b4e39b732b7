/**
 * What a handler answered for one request, as the protocol carries it: a
 * RawBody travels as its text with its content type, anything else as JSON;
 * a failure keeps its status, field and own error body.
 */
import { isFailure, type Maybe } from "../handler/failure.ts";
import { isRawBody } from "../handler/raw-body.ts";
import type { RequestOutcome } from "../protocol/messages.ts";

/** A body (a reply or a streamed chunk) as `{body, content_type?}`. */
export function encodeBody(body: unknown): { body: unknown; content_type?: string } {
  return isRawBody(body) ? { body: body.text, content_type: body.contentType } : { body };
}

export function toOutcome(reply: Maybe<unknown>): RequestOutcome {
  if (!isFailure(reply)) return { ok: true, ...encodeBody(reply) };
  const outcome: RequestOutcome = { ok: false, status: reply.status, message: reply.message };
  if (reply.field !== undefined) outcome.field = reply.field;
  if (reply.body !== undefined) outcome.body = reply.body;
  return outcome;
}

/**
 * A response body sent as text with its own content type instead of as JSON
 * (server-sent events, plain text). A stage or a route may return one as a
 * request's reply, and `ctx.stream` may send one as a chunk.
 */
export class RawBody {
  constructor(readonly text: string, readonly contentType: string) {}
}

export const isRawBody = (value: unknown): value is RawBody => value instanceof RawBody;

/** What TorchServe 0.12 can frame as a content type: printable ASCII (it counts characters, writes UTF-8). */
const MEDIA_TYPE = /^[\x21-\x7e][\x20-\x7e]*$/;

/**
 * A response body sent as text with its own content type instead of as JSON
 * (server-sent events, plain text). A stage or a route may return one as a
 * request's reply, and `ctx.stream` may send one as a chunk.
 */
export class RawBody {
  constructor(
    readonly text: string,
    readonly contentType: string,
  ) {
    if (!MEDIA_TYPE.test(contentType)) {
      throw new TypeError(
        `RawBody: content type ${JSON.stringify(contentType)} is not a media type of printable ASCII (such as "text/plain; charset=utf-8")`,
      );
    }
  }
}

export const isRawBody = (value: unknown): value is RawBody => value instanceof RawBody;

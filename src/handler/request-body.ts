/**
 * A request body on its way to a parser: a body that could not be read as
 * JSON (the shim's `body_error`) is refused with a 400 naming `body` before
 * any parser sees it. The handler's own path and every route read bodies so.
 */
import { RequestFailure } from "./failure.ts";

export function parseBody<T>(
  body: unknown,
  bodyError: string | undefined,
  parse: (body: unknown) => T | RequestFailure,
): T | RequestFailure {
  return bodyError !== undefined ? RequestFailure.badRequest(bodyError, "body") : parse(body);
}

import { describeThrown } from "./error-place.ts";

/**
 * A refusal or failure of one request. Stages return it in place of an item so
 * that one bad request never fails its batch mates; the runtime turns it into
 * that request's HTTP status and `{"error": {...}}` body.
 */
export class RequestFailure extends Error {
  /**
   * @param body the error body to send instead of tsserve's
   *   `{"error": {code, message, field}}` (a route's own error shape)
   */
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
    readonly body?: unknown,
  ) {
    super(message);
    this.name = "RequestFailure";
  }

  static badRequest(message: string, field?: string): RequestFailure {
    return new RequestFailure(400, message, field);
  }

  static notFound(message: string, field?: string): RequestFailure {
    return new RequestFailure(404, message, field);
  }

  /** The same failure, answered with `body`. */
  withBody(body: unknown): RequestFailure {
    const failure = new RequestFailure(this.status, this.message, this.field, body);
    if (this.thrown) failure.thrown = this.thrown;
    return failure;
  }

  /** The exception this failure was made from (its stack, for the model log). */
  thrown?: Error;

  /**
   * Any thrown value as a failure: RequestFailures keep their status, others
   * are 500s whose message names where the handler threw (see error-place.ts).
   */
  static from(error: unknown): RequestFailure {
    if (error instanceof RequestFailure) return error;
    if (!(error instanceof Error)) return new RequestFailure(500, String(error));
    const failure = new RequestFailure(500, describeThrown(error));
    failure.thrown = error;
    return failure;
  }
}

export type Maybe<T> = T | RequestFailure;

export const isFailure = (value: unknown): value is RequestFailure => value instanceof RequestFailure;

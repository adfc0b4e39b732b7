/**
 * Routes: the sub-paths a handler answers besides its own. TorchServe passes
 * what follows `/predictions/<model>/<version>/` to the handler as the
 * `url_path` request header; a request whose url_path names a route goes to
 * that route instead of the handler's pipeline. A route answers all the
 * requests of a batch that came to it at once, one reply or failure each.
 */
import type { StageContext } from "./context.ts";
import type { Maybe, RequestFailure } from "./failure.ts";
import type { HandlerSection } from "../config/model-config.ts";

/** One HTTP request to a route. */
export interface RouteCall {
  /** The parsed JSON body (null when empty or unreadable). */
  readonly body: unknown;
  /** Why the body could not be read as JSON, when it could not. */
  readonly bodyError?: string;
}

export interface Route<Cfg = HandlerSection> {
  /** The url_path this route answers, without a leading slash: `v1/completions`. */
  readonly path: string;
  /**
   * One reply per call: a JSON-serialisable body, a RawBody, or a
   * RequestFailure. `ctx.requestIndices[i]` is call i's index in the batch,
   * and `ctx.stream(ctx.requestIndices[i], chunk)` streams to it.
   */
  handle(calls: readonly RouteCall[], ctx: StageContext<Cfg>): Promise<Maybe<unknown>[]>;
  /** The body of a refusal on this route; by default tsserve's `{"error": {code, message, field}}`. */
  errorBody?(failure: RequestFailure): unknown;
}

/** A route's path as the runtime compares it: no leading or trailing slashes. */
export const normalizeRoutePath = (path: string): string => path.replace(/^\/+|\/+$/g, "");

/**
 * The handler API: one class per model with TorchServe's four functions,
 * typed by its config schema and its request schema.
 */
import type { z } from "zod";
import type { HandlerContext, StageContext } from "./context.ts";
import { RequestFailure, type Maybe } from "./failure.ts";
import { parseOrFail } from "./validate.ts";
import type { Route } from "./route.ts";
import { HandlerSection } from "../config/model-config.ts";

export abstract class Handler<Req = unknown, Cfg = HandlerSection, In = unknown, Out = unknown> {
  /** Validates one HTTP request body; a refusal names the field. */
  abstract readonly requestSchema: z.ZodType<Req>;
  /** Parses the `handler:` section of model-config.yaml (extend `HandlerSection`). */
  readonly configSchema: z.ZodType<Cfg> = HandlerSection as unknown as z.ZodType<Cfg>;

  /**
   * One HTTP request body to a valid request, or a refusal naming the field.
   * The default asks `requestSchema`; a handler may add a faster check in
   * front that gives the schema's answers.
   */
  parseRequest(body: unknown): Req | RequestFailure {
    return parseOrFail(this.requestSchema, body);
  }

  /**
   * The sub-paths this handler answers besides its own (`/predictions/<model>/<version>/<path>`);
   * a request to any other sub-path gets a 404. Asked once, at the first batch.
   */
  routes(): readonly Route<Cfg>[] {
    return [];
  }

  /** The refusal of a request to a sub-path that no route answers (404, naming the path). */
  unknownRoute(path: string): RequestFailure {
    const known = ["", ...this.routes().map((route) => route.path)].map((p) => JSON.stringify(p)).join(", ");
    return RequestFailure.notFound(`url_path: no route "${path}" on this model (it answers ${known})`, "url_path");
  }

  /** Called once per worker after the model is loaded. */
  async initialize(_ctx: HandlerContext<Cfg>): Promise<void> {}

  /** Valid requests of one batch in, model inputs out (a RequestFailure refuses one request). */
  abstract preprocess(requests: Req[], ctx: StageContext<Cfg>): Promise<Maybe<In>[]>;

  /** Model inputs in, raw outputs out. The default handlers make one batched `generate` call. */
  abstract inference(inputs: In[], ctx: StageContext<Cfg>): Promise<Maybe<Out>[]>;

  /** Raw outputs in, one JSON-serialisable response body per request out. */
  abstract postprocess(outputs: Out[], ctx: StageContext<Cfg>): Promise<Maybe<unknown>[]>;
}

// biome-ignore-start lint/suspicious/noExplicitAny: any handler, whatever its types: its stages take them as parameters, so only any matches them all
export type AnyHandler = Handler<any, any, any, any>;
export type HandlerClass<H extends AnyHandler = AnyHandler> = new () => H;
export type RequestOf<H> = H extends Handler<infer R, any, any, any> ? R : never;
export type ConfigOf<H> = H extends Handler<any, infer C, any, any> ? C : never;
// biome-ignore-end lint/suspicious/noExplicitAny: any handler

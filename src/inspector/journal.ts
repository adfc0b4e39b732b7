/**
 * What a handler's Node child tells the inspector about each request (the
 * journal), posted to `tsserve dev` while `TSSERVE_INSPECTOR_URL` is set:
 * plain JSON values, checked with these schemas where they arrive.
 */
import { z } from "zod";

/** One token as the page shows it: `kind` tells a special token and the template's text from the request's own. */
export const TokenChip = z.strictObject({
  text: z.string(),
  id: z.number().int(),
  kind: z.enum(["special", "template", "content", "generated"]),
  logprob: z.number().nullable().optional(),
  /** The most likely alternatives at this position, text -> logprob. */
  top: z.record(z.string(), z.number()).nullable().optional(),
});
export type TokenChip = z.infer<typeof TokenChip>;

export const ModelCallOutcome = z.discriminatedUnion("ok", [
  z.strictObject({
    ok: z.literal(true),
    text: z.string(),
    finishReason: z.enum(["stop", "length"]),
    tokens: z.array(TokenChip),
    promptTokens: z.number().int(),
    cachedTokens: z.number().int().optional(),
    computeMs: z.number(),
  }),
  z.strictObject({ ok: z.literal(false), status: z.number().int(), message: z.string(), field: z.string().optional() }),
]);

/** One prompt of one `ctx.model.generate` call, and what the model made of it. */
export const ModelCall = z.strictObject({
  call: z.number().int(),
  prompt: z.string(),
  promptChips: z.array(TokenChip),
  params: z.record(z.string(), z.unknown()),
  structured: z.unknown().optional(),
  outcome: ModelCallOutcome,
  ms: z.number(),
});
export type ModelCall = z.infer<typeof ModelCall>;

export const StageTime = z.strictObject({ stage: z.string(), ms: z.number() });
export type StageTime = z.infer<typeof StageTime>;

export const JourneyEnd = z.strictObject({
  status: z.number().int(),
  body: z.unknown(),
  /** For a refusal or a failure: the message, the field it is about, the stage that failed and where the handler threw. */
  error: z
    .strictObject({
      message: z.string(),
      field: z.string().optional(),
      stage: z.string().optional(),
      location: z.string().optional(),
    })
    .optional(),
});
export type JourneyEnd = z.infer<typeof JourneyEnd>;

export const JournalEvent = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("hello"),
    handler: z.string(),
    routes: z.array(z.string()),
    requestSchema: z.record(z.string(), z.unknown()).nullable(),
  }),
  z.strictObject({ kind: z.literal("start"), id: z.string(), at: z.number(), route: z.string(), body: z.unknown() }),
  z.strictObject({ kind: z.literal("delta"), ids: z.array(z.string()), text: z.string() }),
  z.strictObject({ kind: z.literal("call"), ids: z.array(z.string()), call: ModelCall }),
  z.strictObject({ kind: z.literal("end"), id: z.string(), stages: z.array(StageTime), end: JourneyEnd }),
]);
export type JournalEvent = z.infer<typeof JournalEvent>;

/** A request as the page shows it: the events of one id put together. */
export interface Journey {
  id: string;
  /** Which save of the handler served it (0: the code `tsserve dev` started with). */
  codeVersion: number;
  at: number;
  route: string;
  body: unknown;
  streamed: string;
  calls: ModelCall[];
  stages: StageTime[];
  end?: JourneyEnd;
}

/** The environment variable `tsserve dev` gives TorchServe (and so each handler's Node child): where to post. */
export const INSPECTOR_URL_ENV = "TSSERVE_INSPECTOR_URL";

/**
 * Properties of the completion request schema, over generated bodies:
 * arbitrary JSON never makes validation throw; every refusal is a 400 whose
 * message is `<field path>: <reason>` for a field the schema knows; valid
 * requests parse with the documented defaults filled in; and breaking one
 * field of a valid request is refused naming that field.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CompletionRequest,
  CompletionRequestFields,
  REQUEST_DEFAULTS,
  REQUEST_LIMITS,
  parsePlainCompletionRequest,
} from "../../../src/completions/request.ts";
import { parseOrFail } from "../../../src/handler/validate.ts";
import { RequestFailure } from "../../../src/handler/failure.ts";
import { expectEqualValue, expectSame, expectTrue } from "../property-checks.ts";
import { propertyRuns } from "../property-runs.ts";

const RUNS = propertyRuns(10_000);
const KNOWN = Object.keys(CompletionRequestFields);

/** The defaults as the documentation states them (docs/requests.md, "Fields"), not read from the code. */
const DOCUMENTED = {
  seed: 0,
  max_tokens: 16,
  temperature: 0.8,
  top_p: 0,
  top_k: 50,
  repetition_penalty: 1,
  logprobs: 0,
  n: 1,
  echo: false,
  stream: false,
} as const;

/** What arrives over HTTP is JSON text: round-trip so values are what a parsed body holds. */
const wire = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

const parse = (body: unknown) => parseOrFail(CompletionRequest, body);

/** A refusal is a 400 whose message starts with its field path, which starts at a known field (or is `body`). */
function expectNamedRefusal(failure: RequestFailure): void {
  expectTrue(failure instanceof RequestFailure, "a RequestFailure");
  expectSame(failure.status, 400);
  expectSame(typeof failure.field, "string");
  const prefix = `${failure.field}: `;
  expectTrue(
    failure.message.startsWith(prefix) && failure.message.length > prefix.length,
    `"${failure.message}" starts with "${prefix}" and says more`,
  );
  const [head, ...rest] = failure.field!.split(".");
  if (head === "body") expectEqualValue(rest, []);
  else expectTrue(KNOWN.includes(head!), `${head} is a known field`);
  // Deeper segments are list indexes or the keys of a message.
  for (const segment of rest) expectTrue(/^(\d+|role|content)$/.test(segment), `segment ${segment} is an index, role or content`);
}

// ---- arbitrary bodies -------------------------------------------------------

/** Values a known field might be sent: any JSON, or something near its domain (valid or just outside). */
const nearValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(null, 0, -1, 1, 0.5, 2, 2.5, 20, 21, 256, 1e300, -0, "", "x", true, false, [], [""], ["a"], {}),
  fc.integer({ min: -5, max: 30 }),
  fc.double({ noNaN: false }),
  fc.string({ unit: "binary", maxLength: 300 }),
  fc.array(fc.string({ maxLength: 5 }), { maxLength: 20 }),
  fc.array(fc.record({ role: fc.constantFrom("system", "user", "assistant", "bot", 1), content: fc.oneof(fc.string(), fc.integer()) }), {
    maxLength: 4,
  }),
);

/** Objects with some known fields (any values) and some unknown keys. */
const mixedBody = fc
  .tuple(
    fc.dictionary(fc.constantFrom(...KNOWN), nearValue, { maxKeys: 8 }),
    fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
  )
  .map(([known, unknown]) => ({ ...unknown, ...known }));

const anyBody = fc.oneof(fc.jsonValue({ maxDepth: 3 }), mixedBody, mixedBody);

// ---- valid requests ---------------------------------------------------------

const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(fc.option(arb, { nil: null }), { nil: undefined, freq: 3 });
const stopSequence = fc.string({ unit: "binary", minLength: 1, maxLength: REQUEST_LIMITS.maxStopLength });

const validRequest = fc
  .record(
    {
      text: fc.oneof(
        fc.record({ prompt: fc.string({ unit: "binary", maxLength: 200 }) }),
        fc.record({
          messages: fc.array(fc.record({ role: fc.constantFrom("system", "user", "assistant"), content: fc.string({ maxLength: 50 }) }), {
            minLength: 1,
            maxLength: 5,
          }),
        }),
      ),
      seed: maybe(fc.integer({ min: -(2 ** 31), max: 2 ** 31 })),
      max_tokens: maybe(fc.integer({ min: 0, max: 1_000_000 })),
      temperature: maybe(fc.oneof(fc.constant(0), fc.double({ min: 0, max: REQUEST_LIMITS.maxTemperature, noNaN: true }))),
      top_p: maybe(fc.double({ min: 0, max: 1, noNaN: true })),
      top_k: maybe(fc.nat()),
      repetition_penalty: maybe(fc.double({ min: 1e-6, max: 100, noNaN: true })),
      logprobs: maybe(fc.integer({ min: 0, max: REQUEST_LIMITS.maxLogprobs })),
      stop: maybe(fc.oneof(stopSequence, fc.array(stopSequence, { maxLength: REQUEST_LIMITS.maxStopSequences }))),
      model: maybe(fc.string({ maxLength: 30 })),
      n: maybe(fc.integer({ min: 1, max: REQUEST_LIMITS.maxBestOf })),
      extraBestOf: maybe(fc.integer({ min: 0, max: REQUEST_LIMITS.maxBestOf })),
      echo: maybe(fc.boolean()),
      stream: maybe(fc.boolean()),
      unknown: fc.dictionary(
        fc.string({ maxLength: 8 }).filter((k) => !KNOWN.includes(k) && k !== "__proto__"),
        fc.jsonValue({ maxDepth: 1 }),
        { maxKeys: 2 },
      ),
    },
    { requiredKeys: ["text", "unknown"] },
  )
  .map(({ text, extraBestOf, unknown, ...fields }) => {
    const body: Record<string, unknown> = { ...unknown, ...text };
    for (const [key, value] of Object.entries(fields)) if (value !== undefined) body[key] = value;
    // Keep the cross-field rules: best_of ≥ n; greedy means one choice; streaming means best_of = n and no echo.
    const n = (body.n as number | null | undefined) ?? 1;
    if (extraBestOf != null) body.best_of = Math.min(REQUEST_LIMITS.maxBestOf, n + extraBestOf);
    else if (extraBestOf === null) body.best_of = null;
    if (body.temperature === 0) {
      if (body.n != null) body.n = 1;
      if (body.best_of != null) body.best_of = 1;
    }
    if (body.stream === true) {
      if (body.best_of != null) body.best_of = body.n ?? 1;
      if (body.echo === true) body.echo = false;
    }
    return wire(body) as Record<string, unknown>;
  });

// ---- single-field breakage --------------------------------------------------

/** For each field, values that are wrong whatever else the request holds. */
const BROKEN: Record<string, fc.Arbitrary<unknown>> = {
  prompt: fc.oneof(fc.integer(), fc.boolean(), fc.array(fc.string(), { maxLength: 2 }), fc.constant({})),
  seed: fc.oneof(fc.string(), fc.double({ min: 0.1, max: 0.9, noNaN: true }), fc.boolean()),
  max_tokens: fc.oneof(fc.integer({ min: -1e6, max: -1 }), fc.string(), fc.double({ min: 0.1, max: 0.9, noNaN: true })),
  temperature: fc.oneof(
    fc.double({ min: 2.000001, max: 1e9, noNaN: true }),
    fc.double({ min: -1e9, max: -1e-9, noNaN: true }),
    fc.string(),
  ),
  top_p: fc.oneof(fc.double({ min: 1.000001, max: 1e9, noNaN: true }), fc.double({ min: -1e9, max: -1e-9, noNaN: true }), fc.boolean()),
  top_k: fc.oneof(fc.integer({ max: -1 }), fc.constant("50")),
  repetition_penalty: fc.oneof(fc.double({ min: -1e9, max: 0, noNaN: true }), fc.constant([])),
  logprobs: fc.oneof(fc.integer({ min: 21, max: 1000 }), fc.integer({ max: -1 }), fc.boolean()),
  stop: fc.oneof(
    fc.constant(""),
    fc.integer(),
    fc.array(fc.integer(), { minLength: 1, maxLength: 3 }),
    fc.string({ minLength: 257, maxLength: 300 }),
  ),
  model: fc.oneof(fc.integer(), fc.boolean(), fc.constant({})),
  n: fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 21, max: 1000 }), fc.string()),
  best_of: fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 21, max: 1000 }), fc.constant(true)),
  echo: fc.oneof(fc.integer(), fc.string(), fc.constant([])),
  stream: fc.oneof(fc.integer(), fc.string(), fc.constant({})),
};

describe("completion request schema: properties", () => {
  it("never throws on arbitrary JSON; every refusal is a 400 naming a known field path", () => {
    fc.assert(
      fc.property(anyBody, (raw) => {
        const body = wire(raw);
        const result = parse(body);
        if (result instanceof RequestFailure) expectNamedRefusal(result);
        else expectTrue(result.prompt !== undefined || result.messages !== undefined, "a prompt or messages");
      }),
      { numRuns: RUNS },
    );
  });

  it("parses every valid request, filling in the documented defaults and keeping what was given", () => {
    fc.assert(
      fc.property(validRequest, (body) => {
        const parsed = parse(body);
        if (parsed instanceof RequestFailure) throw new Error(`refused ${JSON.stringify(body)}: ${parsed.message}`);
        const given = (key: string) => body[key] ?? undefined;
        for (const key of Object.keys(DOCUMENTED) as (keyof typeof DOCUMENTED)[]) {
          expectSame(parsed[key], given(key) ?? DOCUMENTED[key]);
        }
        expectSame(parsed.best_of, given("best_of") ?? parsed.n);
        const stop = given("stop");
        expectEqualValue(parsed.stop, stop === undefined ? [] : typeof stop === "string" ? [stop] : stop);
        expectSame(parsed.model, given("model"));
        expectSame(parsed.prompt, given("prompt"));
        expectEqualValue(parsed.messages, given("messages"));
        // Unknown keys are accepted and left out.
        expectTrue(
          Object.keys(parsed).every((key) => KNOWN.includes(key)),
          "only known keys",
        );
      }),
      { numRuns: RUNS },
    );
  });

  it("agrees with REQUEST_DEFAULTS, which the documentation states", () => {
    expect(REQUEST_DEFAULTS).toMatchObject(DOCUMENTED);
  });

  it("refuses a valid request with one field broken, naming that field", () => {
    const broken = fc
      .tuple(validRequest, fc.constantFrom(...Object.keys(BROKEN)))
      .chain(([body, key]) => BROKEN[key]!.map((value) => ({ body: wire({ ...body, [key]: value }) as Record<string, unknown>, key })));
    fc.assert(
      fc.property(broken, ({ body, key }) => {
        // A broken prompt next to messages is refused for having both, which names messages; drop them.
        if (key === "prompt") delete body.messages;
        const failure = parse(body);
        if (!(failure instanceof RequestFailure)) throw new Error(`accepted ${JSON.stringify(body)}`);
        expectNamedRefusal(failure);
        expectSame(failure.field!.split(".")[0], key);
      }),
      { numRuns: RUNS },
    );
  });
});

/** The hot path must give the schema's verdict and value on every body: it accepts exactly what the schema accepts. */
function expectSchemaAnswer(body: unknown): void {
  const plain = parsePlainCompletionRequest(body);
  const schema = CompletionRequest.safeParse(body);
  if (schema.success) expectEqualValue(plain, schema.data);
  else expectSame(plain, undefined);
}

describe("parsePlainCompletionRequest (the path without zod)", () => {
  it("gives the schema's answer on arbitrary bodies", () => {
    fc.assert(
      fc.property(anyBody, (raw) => expectSchemaAnswer(wire(raw))),
      { numRuns: RUNS },
    );
  });

  it("gives the schema's answer on valid requests and on valid requests with one field broken", () => {
    const oneBroken = fc
      .tuple(validRequest, fc.constantFrom(...Object.keys(BROKEN)))
      .chain(([body, key]) => BROKEN[key]!.map((value) => wire({ ...body, [key]: value })));
    fc.assert(fc.property(fc.oneof(validRequest, oneBroken), expectSchemaAnswer), { numRuns: RUNS });
  });

  it("counts stop lengths in code points, as the schema does", () => {
    const astral = "\u{1F600}".repeat(REQUEST_LIMITS.maxStopLength);
    expect(astral.length).toBeGreaterThan(REQUEST_LIMITS.maxStopLength);
    expectSchemaAnswer({ prompt: "p", stop: astral });
    expect(parsePlainCompletionRequest({ prompt: "p", stop: astral })?.stop).toEqual([astral]);
    expectSchemaAnswer({ prompt: "p", stop: [`${astral}x`] });
  });
});

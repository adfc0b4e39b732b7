// Each hot-path guard may vouch only for params its schema accepts unchanged.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isHandleParams } from "../../../src/protocol/guards.ts";
import { HandleParams } from "../../../src/protocol/messages.ts";
import { propertyRuns } from "../property-runs.ts";

const anyJson = fc.jsonValue({ maxDepth: 2 });
const nearString = fc.oneof(fc.string({ maxLength: 4 }), anyJson);
const incoming = fc.record({ body: anyJson, body_error: nearString, request_id: nearString, other: anyJson }, { requiredKeys: [] });
const nearHandle = fc.record(
  {
    batch_id: fc.oneof(fc.integer(), fc.constantFrom(1.5, 2 ** 60, -0, "1", null)),
    requests: fc.oneof(fc.array(incoming, { maxLength: 4 }), anyJson),
    other: anyJson,
  },
  { requiredKeys: [] },
);
const validHandle = fc.record({
  batch_id: fc.nat(),
  requests: fc.array(fc.record({ body: anyJson, body_error: fc.string(), request_id: fc.string() }, { requiredKeys: ["body"] }), {
    maxLength: 4,
  }),
});

describe("isHandleParams", () => {
  it("vouches only for params HandleParams accepts, and they come back unchanged", () => {
    fc.assert(
      fc.property(fc.oneof(nearHandle, anyJson), (value) => {
        const params = JSON.parse(JSON.stringify(value) ?? "null");
        if (!isHandleParams(params)) return;
        const parsed = HandleParams.safeParse(params);
        expect(parsed.success).toBe(true);
        expect(parsed.data).toEqual(params);
      }),
      { numRuns: propertyRuns(5000) },
    );
  });

  it("vouches for every well-formed handle, so the hot path skips zod", () => {
    fc.assert(
      fc.property(validHandle, (params) => {
        expect(isHandleParams(JSON.parse(JSON.stringify(params)))).toBe(true);
      }),
      { numRuns: propertyRuns(2000) },
    );
  });

  it("leaves wrong params to the schema", () => {
    expect(isHandleParams({ batch_id: 1, requests: [{ body: 1, extra: 2 }] })).toBe(false);
    expect(isHandleParams({ batch_id: 1, requests: [{ body: 1, request_id: 7 }] })).toBe(false);
    expect(isHandleParams({ batch_id: "1", requests: [] })).toBe(false);
    expect(isHandleParams(JSON.parse('{"batch_id":1,"requests":[],"__proto__":{}}'))).toBe(false);
  });
});

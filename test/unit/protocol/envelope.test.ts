// parseEnvelope (the hot-path check) must give JsonRpcMessage's verdict on every message.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseEnvelope } from "../../../src/protocol/envelope.ts";
import { JsonRpcMessage } from "../../../src/protocol/messages.ts";
import { propertyRuns } from "../property-runs.ts";

const ids = fc.oneof(
  fc.integer(),
  fc.constantFrom(1.5, 2 ** 60, -0, Number.MAX_SAFE_INTEGER),
  fc.string({ maxLength: 4 }),
  fc.constant(null),
  fc.boolean(),
);
const anyJson = fc.jsonValue({ maxDepth: 2 });
const errors = fc.oneof(
  fc.record(
    { code: ids, message: fc.oneof(fc.string({ maxLength: 4 }), fc.integer()), data: anyJson, extra: anyJson },
    { requiredKeys: [] },
  ),
  anyJson,
);
const messages = fc.record(
  {
    jsonrpc: fc.constantFrom("2.0", "1.0", 2),
    id: ids,
    method: fc.oneof(fc.string({ maxLength: 6 }), fc.integer()),
    params: anyJson,
    result: anyJson,
    error: errors,
    other: anyJson,
  },
  { requiredKeys: [] },
);

describe("parseEnvelope", () => {
  it("accepts exactly what JsonRpcMessage accepts", () => {
    fc.assert(
      fc.property(fc.oneof(messages, anyJson), (value) => {
        const fromJson = JSON.parse(JSON.stringify(value) ?? "null");
        expect(parseEnvelope(fromJson) !== undefined).toBe(JsonRpcMessage.safeParse(fromJson).success);
      }),
      { numRuns: propertyRuns(3000) },
    );
  });

  it("classifies the four kinds", () => {
    expect(parseEnvelope({ jsonrpc: "2.0", id: 1, method: "ping", params: {} })).toBeDefined();
    expect(parseEnvelope({ jsonrpc: "2.0", method: "stream/chunk", params: {} })).toBeDefined();
    expect(parseEnvelope({ jsonrpc: "2.0", id: "a", result: null })).toBeDefined();
    expect(parseEnvelope({ jsonrpc: "2.0", id: null, error: { code: -32600, message: "x", data: [1] } })).toBeDefined();
    expect(parseEnvelope({ jsonrpc: "2.0", id: null, result: 1 })).toBeUndefined();
    expect(parseEnvelope(JSON.parse('{"jsonrpc":"2.0","id":1,"result":1,"__proto__":{}}'))).toBeUndefined();
  });
});

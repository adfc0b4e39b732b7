import { describe, expect, it } from "vitest";
import { z } from "zod";
import { generateStructured, structuredOutput, StructuredOutputError, unsupportedSchemaFeatures } from "../../../src/structured/index.ts";
import { FakeModel, fakeOutcome } from "../../../src/testing/index.ts";
import type { GenerateRequest } from "../../../src/protocol/messages.ts";
import { greedyRequest } from "../../fixtures/greedy-request.ts";

const REQUEST: GenerateRequest = greedyRequest("Q", 200);

const Person = z.object({ name: z.string(), age: z.int().min(0).max(150), tags: z.array(z.enum(["a", "b"])).max(2) });

describe("unsupportedSchemaFeatures", () => {
  it("accepts what the grammar enforces", () => {
    expect(unsupportedSchemaFeatures(z.toJSONSchema(Person))).toEqual([]);
    expect(unsupportedSchemaFeatures({ $defs: { x: { type: "integer" } }, anyOf: [{ $ref: "#/$defs/x" }, { type: "null" }] })).toEqual([]);
  });

  it("names each keyword it cannot enforce and where", () => {
    const schema = {
      type: "object",
      properties: { tags: { type: "array", uniqueItems: true }, "a/b": { not: { type: "string" } } },
      allOf: [{ type: "object" }],
    };
    expect(unsupportedSchemaFeatures(schema)).toEqual([
      '"allOf" is not supported (combine the schemas into one)',
      '"uniqueItems" at /properties/tags is not supported',
      '"not" at /properties/a~1b is not supported',
    ]);
  });

  it("refuses remote refs, unknown formats, multipleOf on numbers, a pattern with a length", () => {
    expect(unsupportedSchemaFeatures({ $ref: "http://x/y" })[0]).toMatch(/"\$ref" must point into the schema itself/);
    expect(unsupportedSchemaFeatures({ type: "string", format: "color" })[0]).toMatch(
      /"format": "color" is not supported \(supported: date,/,
    );
    expect(unsupportedSchemaFeatures({ type: "number", multipleOf: 0.5 })).toEqual(['"multipleOf" is supported on integers only']);
    expect(unsupportedSchemaFeatures({ type: "string", pattern: "a+", maxLength: 3 })[0]).toMatch(
      /cannot be combined with minLength\/maxLength/,
    );
    expect(unsupportedSchemaFeatures({ type: "string", frobnicate: 1 })).toEqual([
      '"frobnicate" is not a JSON Schema keyword tsserve knows',
    ]);
    expect(unsupportedSchemaFeatures([1])).toEqual(["the schema must be a JSON Schema object"]);
  });
});

describe("structuredOutput", () => {
  it("a zod schema: its input's JSON Schema, and the typed value back", () => {
    const spec = structuredOutput(Person);
    expect(spec.structured).toMatchObject({ json_schema: { type: "object", required: ["name", "age", "tags"] } });
    const parsed = spec.parse('{"name": "Ada", "age": 36, "tags": ["a"]}');
    expect(parsed).toEqual({ success: true, value: { name: "Ada", age: 36, tags: ["a"] } });
    expect(spec.parse('{"name": "Ada", "age": 200, "tags": []}')).toMatchObject({ success: false, error: expect.stringContaining("age") });
    expect(spec.parse('{"name": "Ad')).toMatchObject({ success: false, error: expect.stringMatching(/^not JSON/) });
  });

  it("keeps zod's string formats and drops the look-alike patterns zod puts next to them", () => {
    const spec = structuredOutput(z.object({ mail: z.email() }));
    expect(spec.structured).toMatchObject({ json_schema: { properties: { mail: { type: "string", format: "email" } } } });
    expect(JSON.stringify(spec.structured)).not.toContain("pattern");
  });

  it("refuses a zod schema the engines cannot enforce, naming the keyword", () => {
    expect(() => structuredOutput(z.string().regex(/^a+$/).max(3))).toThrow(StructuredOutputError);
    expect(() => structuredOutput(z.object({ when: z.date() }))).toThrow(/zod schema: /);
  });

  it("a regex, a choice list, any JSON object", () => {
    expect(structuredOutput({ regex: /\d{3}/ }).structured).toEqual({ regex: "\\d{3}" });
    expect(structuredOutput({ regex: "\\d{3}" }).parse("123")).toEqual({ success: true, value: "123" });
    expect(structuredOutput({ regex: "\\d{3}" }).parse("1234").success).toBe(false);
    const choice = structuredOutput({ choice: ["yes", "no"] as const });
    expect(choice.structured).toEqual({ choice: ["yes", "no"] });
    expect(choice.parse("no")).toEqual({ success: true, value: "no" });
    expect(choice.parse("maybe").success).toBe(false);
    expect(structuredOutput({ jsonObject: true }).parse("[1]")).toEqual({ success: false, error: "not a JSON object" });
    expect(() => structuredOutput({ choice: [] })).toThrow(/choice: must be a list of one or more non-empty strings/);
    expect(() => structuredOutput({ regex: "a[" })).toThrow(/^regex: /);
  });
});

describe("generateStructured", () => {
  it("sends the structured output with each request and parses every sequence", async () => {
    const model = new FakeModel({ script: [['{"name":"Ada","age":36,"tags":[]}', '{"name":"Bob","age":7,"tags":["b"]}']] });
    const [result] = await generateStructured(model, [{ ...REQUEST, num_sequences: 2 }], Person);
    expect(model.requests[0]!.structured).toEqual(structuredOutput(Person).structured);
    if (!result!.ok) throw new Error("expected ok");
    const ages: number[] = result!.sequences.map((s) => (s.parsed.success ? s.parsed.value.age : -1));
    expect(ages).toEqual([36, 7]);
  });

  it("a sequence cut by max_tokens says so and gives no value", async () => {
    const model = new FakeModel({ respond: (request) => fakeOutcome({ ...request, max_tokens: 5 }, '{"nam') });
    const [result] = await generateStructured(model, [REQUEST], Person);
    expect(result).toMatchObject({ ok: true, sequences: [{ text: '{"nam', finish_reason: "length", parsed: { success: false } }] });
    if (result!.ok && !result!.sequences[0]!.parsed.success) expect(result!.sequences[0]!.parsed.error).toMatch(/^cut by max_tokens/);
  });

  it("passes an engine's refusal through", async () => {
    const model = new FakeModel({ respond: () => ({ ok: false, status: 400, message: "structured.json_schema: bad" }) });
    expect(await generateStructured(model, [REQUEST], { choice: ["x"] })).toEqual([
      { ok: false, status: 400, message: "structured.json_schema: bad" },
    ]);
  });
});

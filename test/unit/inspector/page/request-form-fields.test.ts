import { describe, expect, it } from "vitest";
import { completionRequestJsonSchema } from "../../../../src/completions/request-json-schema.ts";
import { bodyOf, CHAT_ROUTE, newField, otherFields, prefilledFields } from "../../../../src/inspector/page/request-form-fields.ts";

const schema = completionRequestJsonSchema();

describe("the request form's fields", () => {
  it("are prefilled from the completion request's JSON Schema, typed through its nullable anyOf", () => {
    const fields = prefilledFields(schema, "");
    expect(fields.map((f) => [f.name, f.type])).toEqual([
      ["prompt", "string"],
      ["max_tokens", "integer"],
      ["temperature", "number"],
      ["stream", "boolean"],
    ]);
    expect(prefilledFields(schema, CHAT_ROUTE).map((f) => f.name)).toEqual(["messages", "max_tokens", "temperature", "stream"]);
    expect(otherFields(schema, fields)).toContain("top_p");
    expect(newField(schema, "stop")).toMatchObject({ name: "stop", type: "string" });
  });

  it("send JSON where a field reads as JSON, and a bad value as it is (for the server to name)", () => {
    const body = bodyOf([
      { name: "prompt", type: "string", text: "16" },
      { name: "max_tokens", type: "integer", text: "16" },
      { name: "temperature", type: "number", text: "hot" },
    ]);
    expect(JSON.parse(body)).toEqual({ prompt: "16", max_tokens: 16, temperature: "hot" });
  });
});

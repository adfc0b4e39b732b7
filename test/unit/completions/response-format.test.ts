// Structured output on the OpenAI routes: response_format and vLLM's extras
// become the GenerateRequest's `structured`; bad or unsupported schemas are a
// 400 in OpenAI's error shape naming the field and what is unsupported; a
// text cut by max_tokens keeps finish_reason "length".
import { describe, expect, it } from "vitest";
import { ChatTemplateHandler } from "../../../src/completions/prompt-format-handlers.ts";
import { openaiStructured } from "../../../src/completions/response-format.ts";
import { isFailure } from "../../../src/handler/failure.ts";
import { runHandler, FakeModel } from "../../../src/testing/index.ts";

const TEMPLATE = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}<assistant>";
const SCHEMA = { type: "object", properties: { answer: { enum: ["A", "B"] } }, required: ["answer"] };
const messages = [{ role: "user", content: "A or B?" }];

async function chat(body: Record<string, unknown>, respond = () => '{"answer":"A"}') {
  const model = new FakeModel({ info: { chat_template: TEMPLATE }, respond });
  const { outcomes } = await runHandler(new ChatTemplateHandler(), [{ messages, ...body }], { model, urlPath: "v1/chat/completions" });
  return { outcome: outcomes[0]!, model };
}

describe("openaiStructured", () => {
  it("maps each form onto the protocol's structured output", () => {
    expect(openaiStructured({})).toBeUndefined();
    expect(openaiStructured({ response_format: { type: "text" } })).toBeUndefined();
    expect(openaiStructured({ response_format: { type: "json_object" } })).toEqual({ json_object: true });
    expect(
      openaiStructured({ response_format: { type: "json_schema", json_schema: { name: "a", schema: SCHEMA, strict: true } } }),
    ).toEqual({ json_schema: SCHEMA });
    expect(openaiStructured({ structured_outputs: { choice: ["x", "y"] } })).toEqual({ choice: ["x", "y"] });
    expect(openaiStructured({ structured_outputs: { json: JSON.stringify(SCHEMA) } })).toEqual({ json_schema: SCHEMA });
    expect(openaiStructured({ guided_regex: "\\d+" })).toEqual({ regex: "\\d+" });
    expect(openaiStructured({ guided_choice: ["p"] })).toEqual({ choice: ["p"] });
    expect(openaiStructured({ guided_json: SCHEMA })).toEqual({ json_schema: SCHEMA });
  });

  it("refuses several at once, unknown types, grammars", () => {
    const several = openaiStructured({ response_format: { type: "json_object" }, guided_choice: ["a"] });
    expect(isFailure(several) && several.message).toBe("guided_choice: give one of response_format, guided_choice, not several");
    const type = openaiStructured({ response_format: { type: "yaml" } });
    expect(isFailure(type) && type.message).toBe('response_format.type: must be "text", "json_object" or "json_schema", got "yaml"');
    const grammar = openaiStructured({ structured_outputs: { grammar: "root ::= x" } });
    expect(isFailure(grammar) && grammar.field).toBe("structured_outputs");
  });
});

describe("response_format on v1/chat/completions", () => {
  it("constrains the generation and answers the JSON as the message content", async () => {
    const { outcome, model } = await chat({ response_format: { type: "json_schema", json_schema: { name: "pick", schema: SCHEMA } } });
    expect(model.requests[0]!.structured).toEqual({ json_schema: SCHEMA });
    expect(outcome).toMatchObject({ ok: true, body: { choices: [{ message: { content: '{"answer":"A"}' }, finish_reason: "stop" }] } });
  });

  it("an unsupported schema is a 400 naming the keyword, in OpenAI's error shape", async () => {
    const schema = { type: "object", properties: { tags: { type: "array", uniqueItems: true } } };
    const { outcome, model } = await chat({ response_format: { type: "json_schema", json_schema: { name: "x", schema } } });
    expect(outcome).toMatchObject({
      ok: false,
      status: 400,
      body: {
        error: {
          message: 'response_format.json_schema.schema: "uniqueItems" at /properties/tags is not supported',
          param: "response_format",
        },
      },
    });
    expect(model.calls).toEqual([]);
  });

  it("a text cut by max_tokens is finish_reason length with the partial text", async () => {
    const { outcome } = await chat({ response_format: { type: "json_object" }, max_tokens: 4 }, () => '{"an');
    expect(outcome).toMatchObject({ ok: true, body: { choices: [{ message: { content: '{"an' }, finish_reason: "length" }] } });
  });
});

describe("response_format on v1/completions", () => {
  it("constrains every prompt of the call", async () => {
    const model = new FakeModel({ respond: () => "B" });
    const { outcomes } = await runHandler(new ChatTemplateHandler(), [{ prompt: ["one", "two"], guided_choice: ["A", "B"] }], {
      model,
      urlPath: "v1/completions",
    });
    expect(model.requests.map((r) => r.structured)).toEqual([{ choice: ["A", "B"] }, { choice: ["A", "B"] }]);
    expect(outcomes[0]).toMatchObject({ ok: true, body: { choices: [{ text: "B" }, { text: "B" }] } });
  });
});

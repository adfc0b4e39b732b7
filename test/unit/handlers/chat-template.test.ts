import { describe, expect, it } from "vitest";
import { ChatTemplateHandler } from "../../../src/completions/prompt-format-handlers.ts";
import { FakeModel, makeContext, runHandler } from "../../../src/testing/index.ts";

const TEMPLATE = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";

describe("ChatTemplateHandler", () => {
  it("renders messages with the model's own chat template", async () => {
    const model = new FakeModel({ info: { chat_template: TEMPLATE } });
    await runHandler(new ChatTemplateHandler(), [{ messages: [{ role: "user", content: "hi" }] }], { model });
    expect(model.prompts).toEqual(["<user>hi<assistant>"]);
  });

  it("prefers the config's chat_template over the model's", async () => {
    const model = new FakeModel({ info: { chat_template: TEMPLATE } });
    await runHandler(new ChatTemplateHandler(), [{ messages: [{ role: "user", content: "hi" }] }], {
      model,
      config: { handler: { chat_template: "[{{ messages[0].content }}]" } },
    });
    expect(model.prompts).toEqual(["[hi]"]);
  });

  it("passes a raw prompt through unchanged", async () => {
    const model = new FakeModel();
    await runHandler(new ChatTemplateHandler(), [{ prompt: "  as is  " }], { model });
    expect(model.prompts).toEqual(["  as is  "]);
  });

  it("refuses messages when neither config nor model has a template", async () => {
    const { outcomes } = await runHandler(new ChatTemplateHandler(), [{ messages: [{ role: "user", content: "hi" }] }]);
    expect(outcomes[0]).toMatchObject({ ok: false, status: 400, field: "messages" });
  });

  it("validates its config section with the extended schema", () => {
    expect(() => makeContext({ handler: new ChatTemplateHandler(), config: { handler: { chat_template: 3 } } })).toThrow(
      /handler\.chat_template/,
    );
  });
});

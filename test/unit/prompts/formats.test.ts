import { describe, expect, it } from "vitest";
import {
  agentInstructRewrite,
  llama2ChatPrompt,
  pyRstrip,
  pyStrip,
  renderChatTemplate,
  vicunaV11Prompt,
} from "../../../src/prompts/index.ts";
import { RequestFailure } from "../../../src/handler/failure.ts";
import { refusal } from "./refusal.ts";

describe("conversation rules shared by the chat formats", () => {
  for (const [name, format] of [
    ["llama-2", (m: never) => llama2ChatPrompt(m)],
    ["vicuna", (m: never) => vicunaV11Prompt(m)],
  ] as const) {
    it(`${name}: refuses a system message that is not first, naming it`, () => {
      const f = refusal(() =>
        format([
          { role: "user", content: "a" },
          { role: "system", content: "b" },
        ] as never),
      );
      expect(f.status).toBe(400);
      expect(f.field).toBe("messages.1.role");
      expect(f.message).toMatch(/^messages\.1\.role: a system message may only come first/);
    });
    it(`${name}: refuses a conversation with only a system message`, () => {
      const f = refusal(() => format([{ role: "system", content: "b" }] as never));
      expect(f.field).toBe("messages");
    });
    it(`${name}: refuses assistant turns that do not alternate`, () => {
      const f = refusal(() =>
        format([
          { role: "user", content: "a" },
          { role: "assistant", content: "b" },
          { role: "assistant", content: "c" },
        ] as never),
      );
      expect(f.message).toBe(
        'messages.2.role: expected "user", got "assistant" (roles must alternate user/assistant/user/..., starting with user)',
      );
    });
    it(`${name}: refuses an empty conversation`, () => {
      expect(refusal(() => format([] as never)).field).toBe("messages");
    });
  }

  it("llama-2 uses the model's bos/eos tokens when given", () => {
    expect(
      llama2ChatPrompt(
        [
          { role: "user", content: "a" },
          { role: "assistant", content: "b" },
          { role: "user", content: "c" },
        ],
        { bosToken: "<B>", eosToken: "<E>" },
      ),
    ).toBe("<B>[INST] a [/INST] b <E><B>[INST] c [/INST]");
  });
});

describe("Python whitespace semantics", () => {
  it("strips what Python's str.strip strips and JavaScript's trim keeps", () => {
    expect(pyStrip("\x1c\x1dx\x85\x1f")).toBe("x");
    expect("\x1c\x1dx\x85\x1f".trim()).not.toBe("x");
  });
  it("keeps the byte-order mark, which JavaScript's trim would remove", () => {
    expect(pyRstrip("x\ufeff")).toBe("x\ufeff");
  });
  it("the AgentInstruct rewrite strips trailing whitespace even without markers", () => {
    expect(agentInstructRewrite("Alan Turing was a ")).toBe("Alan Turing was a");
  });
  it("the AgentInstruct rewrite replaces markers in order, so a marker with a newline wins over the bare one", () => {
    expect(agentInstructRewrite("<|im_start|>user\nhi<|im_start|>user")).toBe("<human>: hi<human>:");
  });
});

describe("renderChatTemplate", () => {
  it("passes bos/eos tokens and add_generation_prompt to the template", () => {
    const t =
      "{{ bos_token }}{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}{% if add_generation_prompt %}>{% endif %}{{ eos_token }}";
    expect(renderChatTemplate(t, [{ role: "user", content: "x" }], { bosToken: "B", eosToken: "E" })).toBe("B[user:x]>E");
    expect(renderChatTemplate(t, [{ role: "user", content: "x" }], { addGenerationPrompt: false })).toBe("[user:x]");
  });
  it("turns raise_exception into a 400 naming messages, but leaves a string literal mentioning it alone", () => {
    const t = "{{ 'raise_exception' }}{% if messages|length > 1 %}{{ raise_exception('one message only') }}{% endif %}";
    expect(renderChatTemplate(t, [{ role: "user", content: "x" }])).toBe("raise_exception");
    const f = refusal(() =>
      renderChatTemplate(t, [
        { role: "user", content: "x" },
        { role: "assistant", content: "y" },
      ]),
    );
    expect(f.message).toBe("messages: one message only");
    expect(f.status).toBe(400);
  });
  it("throws a template that does not parse as a plain error (a configuration mistake, not a bad request)", () => {
    expect(() => renderChatTemplate("{% for %}", [{ role: "user", content: "x" }])).toThrow();
    expect(() => renderChatTemplate("{% for %}", [{ role: "user", content: "x" }])).not.toThrow(RequestFailure);
  });
});

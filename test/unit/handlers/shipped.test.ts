/**
 * The four shipped handlers, through tsserve/testing. Expected prompts come
 * from the golden fixtures (rendered by transformers / FastChat) and from the
 * issue's literal spec of the seed's raw-prompt path.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { FakeModel, runHandler } from "../../../src/testing/index.ts";
import type { AnyHandler } from "../../../src/handler/handler-class.ts";
import Llama7b from "../../../handlers/llama-2-7b-chat.ts";
import Llama13b from "../../../handlers/llama-2-13b-chat.ts";
import Llama70b from "../../../handlers/llama-2-70b-chat.ts";
import Vicuna13b from "../../../handlers/vicuna-13b.ts";
import Llama7bBase from "../../../handlers/llama-2-7b.ts";
import Llama13bBase from "../../../handlers/llama-2-13b.ts";
import Llama70bBase from "../../../handlers/llama-2-70b.ts";
import SmolLM2 from "../../../handlers/smollm2-135m-instruct.ts";
import SEED_EXAMPLE from "../../fixtures/seed-request.json" with { type: "json" };

const FIXTURES = path.resolve(import.meta.dirname, "../../fixtures/prompts");
type Case = { name: string; messages: { role: string; content: string }[]; expected: string };
const golden = (file: string, name: string): Case =>
  (JSON.parse(readFileSync(path.join(FIXTURES, file), "utf8")) as { cases: Case[] }).cases.find((c) => c.name === name)!;

const AGENT_PROMPT =
  "<|im_start|>system\nYou are helpful.\n<|im_end|>\n<|im_start|>user\nWhat is 2+2?\n<|im_end|>\n<|im_start|>assistant\n";

const handlers: [string, () => AnyHandler, "llama" | "vicuna"][] = [
  ["llama-2-7b-chat", () => new Llama7b(), "llama"],
  ["llama-2-13b-chat", () => new Llama13b(), "llama"],
  ["llama-2-70b-chat", () => new Llama70b(), "llama"],
  ["vicuna-13b", () => new Vicuna13b(), "vicuna"],
];

for (const [name, make, family] of handlers) {
  describe(`${name} handler`, () => {
    const rawPrefix = family === "llama" ? "[INST] <<SYS>>\n\n<</SYS>>\n\n" : "";
    const chatFile = family === "llama" ? "llama-2-chat.json" : "vicuna-v1.1.json";

    it("renders the seed's example request as the seed did and passes its parameters through", async () => {
      const model = new FakeModel({ respond: () => "mathematician" });
      const { outcomes } = await runHandler(make(), [SEED_EXAMPLE], { model });
      expect(model.prompts).toEqual([`${rawPrefix}Alan Turing was a`]);
      expect(model.requests[0]).toMatchObject({ max_tokens: 128, temperature: 0.7, top_p: 0.7, top_k: 50, seed: 0, logprobs: 0, stop: [] });
      expect(outcomes[0]).toMatchObject({ ok: true, body: { choices: [{ text: "mathematician", index: 0 }] } });
    });

    it("rewrites AgentInstruct ChatML markers in a raw prompt", async () => {
      const model = new FakeModel();
      await runHandler(make(), [{ prompt: AGENT_PROMPT }], { model });
      expect(model.prompts).toEqual([`${rawPrefix}<human>: You are helpful.\n<human>: What is 2+2?\n<bot>:`]);
    });

    it("renders a multi-turn chat byte for byte as the reference renderer", async () => {
      const c = golden(chatFile, "multi-turn with system");
      const model = new FakeModel();
      await runHandler(make(), [{ messages: c.messages }], { model });
      expect(model.prompts).toEqual([c.expected]);
    });

    it("refuses a chat whose roles do not alternate, naming the message, and serves its batch mates", async () => {
      const model = new FakeModel();
      const { outcomes } = await runHandler(
        make(),
        [
          {
            messages: [
              { role: "user", content: "a" },
              { role: "user", content: "b" },
            ],
          },
          { prompt: "ok" },
        ],
        { model },
      );
      expect(outcomes[0]).toMatchObject({ ok: false, status: 400, field: "messages.1.role" });
      expect(outcomes[1]!.ok).toBe(true);
      expect(model.prompts).toEqual([`${rawPrefix}ok`]);
    });
  });
}

describe("llama-2 chat handlers with another tokenizer", () => {
  it("take bos/eos from the model's info", async () => {
    const model = new FakeModel({ info: { bos_token: "<B>", eos_token: "<E>" } });
    await runHandler(
      new Llama7b(),
      [
        {
          messages: [
            { role: "user", content: "a" },
            { role: "assistant", content: "b" },
            { role: "user", content: "c" },
          ],
        },
      ],
      { model },
    );
    expect(model.prompts).toEqual(["<B>[INST] a [/INST] b <E><B>[INST] c [/INST]"]);
  });
});

describe("base Llama-2 handlers (7b, 13b, 70b)", () => {
  const bases: [string, () => AnyHandler][] = [
    ["llama-2-7b", () => new Llama7bBase()],
    ["llama-2-13b", () => new Llama13bBase()],
    ["llama-2-70b", () => new Llama70bBase()],
  ];
  for (const [name, make] of bases) {
    it(`${name} sends the raw prompt unchanged (no chat format, no AgentInstruct rewrite)`, async () => {
      const model = new FakeModel({ respond: () => "mathematician" });
      const { outcomes } = await runHandler(make(), [SEED_EXAMPLE, { prompt: AGENT_PROMPT }], { model });
      expect(model.prompts).toEqual(["Alan Turing was a ", AGENT_PROMPT]);
      expect(model.requests[0]).toMatchObject({ max_tokens: 128, temperature: 0.7, top_p: 0.7, top_k: 50, seed: 0 });
      expect(outcomes[0]).toMatchObject({ ok: true, body: { choices: [{ text: "mathematician" }] } });
    });

    it(`${name} refuses messages with a 400 naming the field, and serves its batch mates`, async () => {
      const model = new FakeModel();
      const { outcomes } = await runHandler(make(), [{ messages: [{ role: "user", content: "hi" }] }, { prompt: "ok" }], { model });
      expect(outcomes[0]).toMatchObject({ ok: false, status: 400, field: "messages" });
      expect(outcomes[1]!.ok).toBe(true);
    });
  }
});

describe("smollm2-135m-instruct handler", () => {
  const template =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  it("renders messages with the model's own chat template and passes a raw prompt through", async () => {
    const model = new FakeModel({ info: { chat_template: template, bos_token: "<|im_start|>", eos_token: "<|im_end|>" } });
    await runHandler(new SmolLM2(), [{ messages: [{ role: "user", content: "Hi" }] }, { prompt: "raw" }], { model });
    expect(model.prompts).toEqual(["<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", "raw"]);
  });
});

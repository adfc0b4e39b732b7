// The tokenizer routes (vLLM's shapes) offline, through runHandler's url_path:
// tokenize text and chat messages, detokenize, tokenizer_info, refusals
// naming the field. The fake model's tokens are code points.
import { describe, expect, it } from "vitest";
import { Llama2ChatHandler } from "../../../src/completions/prompt-format-handlers.ts";
import { FakeModel, runHandler } from "../../../src/testing/index.ts";
import type { RequestOutcome } from "../../../src/protocol/messages.ts";

const codes = (text: string) => [...text].map((ch) => ch.codePointAt(0)!);

async function call(urlPath: string, bodies: unknown[]) {
  const { outcomes } = await runHandler(new Llama2ChatHandler(), bodies, { urlPath, model: new FakeModel({ info: { vocab_size: 300 } }) });
  return outcomes;
}

const body = (outcome: RequestOutcome | undefined): any => {
  if (!outcome?.ok) throw new Error(`not ok: ${JSON.stringify(outcome)}`);
  return outcome.body;
};

describe("tokenize", () => {
  it("answers vLLM's shape, at tokenize and at v1/tokenize, with token strings when asked", async () => {
    for (const path of ["tokenize", "v1/tokenize"]) {
      const [plain, withStrs] = await call(path, [{ prompt: "Hé" }, { prompt: "ab", return_token_strs: true, add_special_tokens: false }]);
      expect(body(plain)).toEqual({ count: 2, max_model_len: 4096, tokens: codes("Hé"), token_strs: null });
      expect(body(withStrs)).toEqual({ count: 2, max_model_len: 4096, tokens: codes("ab"), token_strs: ["a", "b"] });
    }
  });

  it("tokenizes chat messages as the chat route would send them (the handler's chat format)", async () => {
    const [outcome] = await call("tokenize", [{ messages: [{ role: "user", content: "Hi" }] }]);
    expect(body(outcome).tokens).toEqual(codes("<s>[INST] Hi [/INST]"));
  });

  it("refuses bad bodies in OpenAI's error shape, naming the field", async () => {
    const outcomes = await call("tokenize", [
      {},
      { prompt: 3 },
      { prompt: "a", add_special_tokens: "yes" },
      { messages: [{ role: "wizard", content: "x" }] },
      { messages: [{ role: "user", content: "x" }], add_generation_prompt: false },
    ]);
    expect(outcomes.map((o) => !o.ok && o.field)).toEqual([
      "prompt",
      "prompt",
      "add_special_tokens",
      "messages.0.role",
      "add_generation_prompt",
    ]);
    expect(outcomes[0]).toMatchObject({ status: 400, body: { error: { type: "invalid_request_error", param: "prompt" } } });
  });
});

describe("detokenize", () => {
  it("gives the text back, special tokens kept: a round trip with tokenize", async () => {
    const [tokenized] = await call("tokenize", [{ prompt: "<s>Paris!" }]);
    const [detokenized] = await call("detokenize", [{ tokens: body(tokenized).tokens }]);
    expect(body(detokenized)).toEqual({ prompt: "<s>Paris!" });
  });

  it("refuses ids outside the vocabulary, naming the position", async () => {
    const outcomes = await call("v1/detokenize", [{ tokens: [72, 300] }, { tokens: [1.5] }, {}]);
    expect(outcomes.map((o) => !o.ok && [o.status, o.field])).toEqual([
      [400, "tokens.1"],
      [400, "tokens.0"],
      [400, "tokens"],
    ]);
    expect(outcomes[0]).toMatchObject({ message: "tokens.1: token id 300 is not in the model's vocabulary (0 to 299)" });
  });
});

describe("tokenizer_info", () => {
  it("answers what lm-eval's remote tokenizer reads, whatever the body", async () => {
    const [outcome] = await call("tokenizer_info", [null]);
    expect(body(outcome)).toEqual({
      name_or_path: "fake-model",
      bos_token: "<s>",
      eos_token: "</s>",
      chat_template: null,
      model_max_length: 4096,
      vocab_size: 300,
    });
  });
});

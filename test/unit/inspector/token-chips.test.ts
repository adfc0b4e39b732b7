import { describe, expect, it } from "vitest";
import { generatedChips, promptChips } from "../../../src/inspector/token-chips.ts";

describe("token chips", () => {
  it("marks special tokens, the template's text and the request's content apart", () => {
    const prompt = "<|im_start|>user\nhi there<|im_end|>";
    const chips = promptChips({
      prompt,
      ids: [1, 2, 3, 4, 5, 6],
      texts: ["<|im_start|>", "user", "\n", "hi", " there", "<|im_end|>"],
      plainTexts: ["", "user", "\n", "hi", " there", ""],
      literalSpans: [[17, 25]],
    });
    expect(chips.map((chip) => chip.kind)).toEqual(["special", "template", "template", "content", "content", "special"]);
  });

  it("calls every ordinary token content when the prompt has no spans, and places one the decoder changed nowhere", () => {
    const chips = promptChips({ prompt: "a b", ids: [1, 2, 3], texts: ["<s>", "a", "b"], plainTexts: ["", "a", "b"] });
    expect(chips.map((chip) => chip.kind)).toEqual(["special", "content", "content"]);
    const odd = promptChips({ prompt: "x", ids: [1], texts: ["y"], plainTexts: ["y"], literalSpans: [[0, 1]] });
    expect(odd[0]!.kind).toBe("template");
  });

  it("gives generated tokens their logprob and alternatives", () => {
    const chips = generatedChips({ tokens: ["a"], token_ids: [5], token_logprobs: [-0.2], top_logprobs: [{ a: -0.2 }], text_offset: [0] });
    expect(chips).toEqual([{ text: "a", id: 5, kind: "generated", logprob: -0.2, top: { a: -0.2 } }]);
  });
});

describe("a prompt token's chip text", () => {
  it("keeps the space a token decoded alone loses (SentencePiece), from the prompt itself", () => {
    const chips = promptChips({
      prompt: "[INST] Tell me [/INST]",
      ids: [1, 2, 3, 4, 5],
      texts: ["<s>", "[INST]", "Tell", "me", "[/INST]"],
      plainTexts: ["", "[INST]", "Tell", "me", "[/INST]"],
    });
    expect(chips.map((chip) => chip.text)).toEqual(["<s>", "[INST]", " Tell", " me", " [/INST]"]);
  });
});

// The prompt forms of an OpenAI completion request, and the checks on token
// ids: integers, in the vocabulary, no longer than the context; each refusal
// names where it is.
import { describe, expect, it } from "vitest";
import { completionPrompts, tokenIdProblem } from "../../../src/completions/completion-prompts.ts";
import { RequestFailure } from "../../../src/handler/failure.ts";

const LIMITS = { vocab_size: 100, context_length: 8 };

const refusal = (value: unknown) => {
  const result = completionPrompts(value, LIMITS);
  if (!(result instanceof RequestFailure)) throw new Error(`accepted: ${JSON.stringify(result)}`);
  return { status: result.status, field: result.field, message: result.message };
};

describe("completionPrompts", () => {
  it("takes each of OpenAI's four forms, one prompt per string or token list", () => {
    expect(completionPrompts("Hi", LIMITS)).toEqual([{ text: "Hi" }]);
    expect(completionPrompts(["Hi", ""], LIMITS)).toEqual([{ text: "Hi" }, { text: "" }]);
    expect(completionPrompts([1, 2, 99], LIMITS)).toEqual([{ tokenIds: [1, 2, 99] }]);
    expect(completionPrompts([[0], [5, 6]], LIMITS)).toEqual([{ tokenIds: [0] }, { tokenIds: [5, 6] }]);
  });

  it("accepts a token list exactly as long as the context", () => {
    expect(completionPrompts([[1, 1, 1, 1, 1, 1, 1, 1]], LIMITS)).toEqual([{ tokenIds: [1, 1, 1, 1, 1, 1, 1, 1] }]);
  });

  it.each([
    [undefined, "prompt", "prompt: required"],
    [null, "prompt", "prompt: required"],
    [3, "prompt", "prompt: must be a string, a list of strings, a list of token ids or a list of token-id lists"],
    [[], "prompt", "prompt: must not be an empty list"],
    [
      ["a", 1],
      "prompt",
      "prompt: must be a string, a list of strings, a list of token ids or a list of token-id lists (a list may not mix them)",
    ],
    [
      [[1], 2],
      "prompt",
      "prompt: must be a string, a list of strings, a list of token ids or a list of token-id lists (a list may not mix them)",
    ],
    [[1, 2.5], "prompt.1", "prompt.1: must be an integer token id, not 2.5"],
    [[1, 100], "prompt.1", "prompt.1: token id 100 is not in the model's vocabulary (0 to 99)"],
    [[-1], "prompt.0", "prompt.0: token id -1 is not in the model's vocabulary (0 to 99)"],
    [[[1], [2, "3"]], "prompt.1.1", 'prompt.1.1: must be an integer token id, not "3"'],
    [[[1], []], "prompt.1", "prompt.1: must contain at least one token id"],
    [[[1], [1, 1, 1, 1, 1, 1, 1, 1, 1]], "prompt.1", "prompt.1: has 9 tokens, more than the model's context length of 8 tokens"],
    [[1, 1, 1, 1, 1, 1, 1, 1, 1], "prompt", "prompt: has 9 tokens, more than the model's context length of 8 tokens"],
  ])("refuses %j with a 400 naming %s", (value, field, message) => {
    expect(refusal(value)).toEqual({ status: 400, field, message });
  });
});

describe("tokenIdProblem", () => {
  it("accepts 0 to vocab_size - 1 and nothing else", () => {
    expect(tokenIdProblem(0, 10)).toBeUndefined();
    expect(tokenIdProblem(9, 10)).toBeUndefined();
    expect(tokenIdProblem(10, 10)).toContain("not in the model's vocabulary");
    expect(tokenIdProblem(true, 10)).toContain("must be an integer token id");
    expect(tokenIdProblem(Number.NaN, 10)).toContain("must be an integer token id");
  });
});

/**
 * The prompt of an OpenAI completion request in each form OpenAI's API takes:
 * a string, a list of strings, a list of token ids, a list of token-id lists.
 * Each becomes one prompt with its own choices. Token ids go to the model as
 * ids (never re-tokenized); they must be integers in the model's vocabulary,
 * and a prompt may not be longer than the model's context. Every refusal
 * names where it is: `prompt.1.3: token id 50000 is not in the vocabulary …`.
 */
import { RequestFailure } from "../handler/failure.ts";
import type { ModelInfo } from "../protocol/messages.ts";

/** One prompt as the client sent it: text, or token ids. */
export type CompletionPrompt = { text: string } | { tokenIds: number[] };

/** What the checks need to know about the model. */
export type TokenLimits = Pick<ModelInfo, "vocab_size" | "context_length">;

const FORMS = "must be a string, a list of strings, a list of token ids or a list of token-id lists";

const refuse = (field: string, message: string) => RequestFailure.badRequest(`${field}: ${message}`, field);

/** The prompts of one request, in order, or the refusal of the first thing wrong. */
export function completionPrompts(prompt: unknown, limits: TokenLimits): CompletionPrompt[] | RequestFailure {
  if (prompt === undefined || prompt === null) return refuse("prompt", "required");
  if (typeof prompt === "string") return [{ text: prompt }];
  if (!Array.isArray(prompt)) return refuse("prompt", FORMS);
  if (prompt.length === 0) return refuse("prompt", "must not be an empty list");
  if (prompt.every((item) => typeof item === "string")) return prompt.map((text: string) => ({ text }));
  if (prompt.every((item) => typeof item === "number")) return oneTokenList(prompt, "prompt", limits);
  if (prompt.every(Array.isArray)) return tokenLists(prompt, limits);
  return refuse("prompt", `${FORMS} (a list may not mix them)`);
}

function tokenLists(lists: unknown[][], limits: TokenLimits): CompletionPrompt[] | RequestFailure {
  const prompts: CompletionPrompt[] = [];
  for (const [k, list] of lists.entries()) {
    const checked = oneTokenList(list, `prompt.${k}`, limits);
    if (checked instanceof RequestFailure) return checked;
    prompts.push(...checked);
  }
  return prompts;
}

function oneTokenList(ids: unknown[], field: string, limits: TokenLimits): CompletionPrompt[] | RequestFailure {
  if (ids.length === 0) return refuse(field, "must contain at least one token id");
  for (const [i, id] of ids.entries()) {
    const problem = tokenIdProblem(id, limits.vocab_size);
    if (problem) return refuse(`${field}.${i}`, problem);
  }
  if (ids.length > limits.context_length) {
    return refuse(field, `has ${ids.length} tokens, more than the model's context length of ${limits.context_length} tokens`);
  }
  return [{ tokenIds: ids as number[] }];
}

/** Why `id` is not a token id of a vocabulary of `vocabSize` tokens, or undefined when it is one. */
export function tokenIdProblem(id: unknown, vocabSize: number): string | undefined {
  if (typeof id !== "number" || !Number.isInteger(id)) return `must be an integer token id, not ${JSON.stringify(id)}`;
  if (id < 0 || id >= vocabSize) return `token id ${id} is not in the model's vocabulary (0 to ${vocabSize - 1})`;
  return undefined;
}

/**
 * Tokens as chips: the prompt's tokens told apart (special tokens, the chat
 * template's own text, the request's content), the generated ones with their
 * logprob and top alternatives.
 */
import type { LiteralSpans, TokenLogprobs } from "../protocol/messages.ts";
import type { TokenChip } from "./journal.ts";

export interface PromptTokens {
  prompt: string;
  ids: readonly number[];
  /** Each token's text, special tokens included. */
  texts: readonly string[];
  /** Each token's text with special tokens skipped: "" where the tokenizer calls it special. */
  plainTexts: readonly string[];
  /** The prompt's content spans (a chat's messages); absent: the whole prompt is content. */
  literalSpans?: LiteralSpans;
}

/** Where each token's text starts in the prompt (-1 for one that is not there, an added BOS). */
function tokenStarts(prompt: string, texts: readonly string[]): number[] {
  let cursor = 0;
  return texts.map((text) => {
    const trimmed = text.trimStart();
    if (trimmed === "") return cursor;
    const at = prompt.indexOf(trimmed, cursor);
    // A token's text is found close by, or the decoder changed it (a normalizer): then it is not placed.
    if (at < 0 || at - cursor > text.length + 8) return -1;
    cursor = at + trimmed.length;
    return at;
  });
}

function inSpans(start: number, spans: LiteralSpans): boolean {
  return spans.some(([from, to]) => start >= from && start < to);
}

export function promptChips(tokens: PromptTokens): TokenChip[] {
  const starts = tokenStarts(tokens.prompt, tokens.texts);
  return tokens.ids.map((id, k) => {
    const text = tokens.texts[k] ?? "";
    const special = text !== "" && tokens.plainTexts[k] === "";
    const start = starts[k]!;
    const content = !tokens.literalSpans || (start >= 0 && inSpans(start, tokens.literalSpans));
    return { text, id, kind: special ? "special" : content ? "content" : "template" };
  });
}

export function generatedChips(logprobs: TokenLogprobs): TokenChip[] {
  return logprobs.tokens.map((text, k) => ({
    text,
    id: logprobs.token_ids[k] ?? -1,
    kind: "generated",
    logprob: logprobs.token_logprobs[k] ?? null,
    top: logprobs.top_logprobs[k] ?? null,
  }));
}

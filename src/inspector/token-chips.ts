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

/** Where each token's text starts and ends in the prompt (start -1: not there, as an added BOS). */
function tokenPlaces(prompt: string, texts: readonly string[]): [number, number][] {
  let cursor = 0;
  return texts.map((text) => {
    const trimmed = text.trimStart();
    if (trimmed === "") return [cursor, cursor];
    const at = prompt.indexOf(trimmed, cursor);
    // A token's text is found close by, or the decoder changed it (a normalizer): then it is not placed.
    if (at < 0 || at - cursor > text.length + 8) return [-1, -1];
    cursor = at + trimmed.length;
    return [at, cursor];
  });
}

function inSpans(start: number, spans: LiteralSpans): boolean {
  return spans.some(([from, to]) => start >= from && start < to);
}

/**
 * One chip per prompt token. A placed token's chip shows the prompt from the
 * previous token's end to its own: a token decoded alone loses its leading
 * space (SentencePiece's "▁me"), which the prompt still has.
 */
export function promptChips(tokens: PromptTokens): TokenChip[] {
  const places = tokenPlaces(tokens.prompt, tokens.texts);
  let previousEnd = 0;
  return tokens.ids.map((id, k) => {
    const [start, end] = places[k]!;
    const decoded = tokens.texts[k] ?? "";
    const text = start >= 0 && end > start ? tokens.prompt.slice(previousEnd, end) : decoded;
    if (start >= 0) previousEnd = end;
    const special = decoded !== "" && tokens.plainTexts[k] === "";
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

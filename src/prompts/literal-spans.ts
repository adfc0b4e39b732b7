/**
 * Where chat messages' content lies in a formatted prompt, so that the shim
 * tokenizes a control token's text inside it (`<|im_end|>`, `</s>`) as plain
 * text: a user's message cannot forge a turn. The spans go to the shim as
 * GenerateRequest.literal_spans, in Unicode code points.
 */
import { pyStrip } from "./whitespace.ts";

/**
 * The [start, end) code-point ranges of `prompt` that hold each of `contents`,
 * found in order (as given, else stripped, as the Llama-2 format and many
 * templates strip it); a content the format changed otherwise is not found.
 */
export function contentSpans(prompt: string, contents: readonly string[]): [number, number][] {
  const spans: [number, number][] = [];
  let cursor = 0;
  for (const raw of contents) {
    for (const content of [raw, pyStrip(raw)]) {
      if (!content) break;
      const at = prompt.indexOf(content, cursor);
      if (at >= 0) {
        spans.push([at, at + content.length]);
        cursor = at + content.length;
        break;
      }
    }
  }
  return toCodePoints(prompt, spans);
}

/** UTF-16 offsets (ascending) as code-point offsets: each surrogate pair before an offset counts once. */
function toCodePoints(text: string, spans: readonly [number, number][]): [number, number][] {
  if (!/[\uD800-\uDBFF]/.test(text)) return spans.map(([start, end]) => [start, end]);
  const pairsBefore = (offset: number) => {
    let pairs = 0;
    for (let i = 0; i < offset - 1; i++) {
      const unit = text.charCodeAt(i);
      if (unit >= 0xd800 && unit <= 0xdbff) {
        pairs += 1;
        i += 1;
      }
    }
    return pairs;
  };
  return spans.map(([start, end]) => [start - pairsBefore(start), end - pairsBefore(end)]);
}

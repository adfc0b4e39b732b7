/** Tokens as chips: whitespace made visible, special tokens marked, generated ones coloured by probability. */
import type { TokenChip } from "../journal.ts";
import { html } from "./html.ts";

export function visible(text: string): string {
  return text.replace(/\n/g, "↵").replace(/\t/g, "⇥").replace(/ /g, "·");
}

/** Green for a sure token, through yellow, to red for an unlikely one. */
function colour(logprob: number | null | undefined): string | undefined {
  if (logprob === null || logprob === undefined) return undefined;
  return `hsl(${Math.round(Math.exp(logprob) * 120)}, 70%, 82%)`;
}

function tooltip(chip: TokenChip): string {
  const head = `id ${chip.id}${chip.logprob == null ? "" : `, p = ${(Math.exp(chip.logprob) * 100).toFixed(1)}%`}`;
  const tops = Object.entries(chip.top ?? {})
    .sort(([, a], [, b]) => b - a)
    .map(([text, logprob]) => `${JSON.stringify(text)}  ${(Math.exp(logprob) * 100).toFixed(1)}%`);
  return [head, ...tops].join("\n");
}

export function TokenChips({ chips, testId }: { chips: readonly TokenChip[]; testId: string }) {
  return html`<div class="chips" data-testid=${testId}>
    ${chips.map(
      (chip) =>
        html`<span class=${`chip ${chip.kind}`} style=${colour(chip.logprob) ? { background: colour(chip.logprob) } : undefined} title=${tooltip(chip)}
          >${visible(chip.text) || "∅"}</span
        >`,
    )}
  </div>`;
}

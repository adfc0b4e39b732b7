/** Two requests side by side: the prompt and the generated tokens of each model call, diffed. */
import type { Journey, TokenChip } from "../journal.ts";
import { diffTokens, type DiffPart } from "./diff.ts";
import { html } from "./html.ts";
import { visible } from "./token-chips-view.ts";

const texts = (chips: readonly TokenChip[] | undefined) => (chips ?? []).map((chip) => chip.text);

function Parts({ parts, side }: { parts: DiffPart[]; side: "before" | "after" }) {
  const hidden = side === "before" ? "added" : "removed";
  return html`<div class="diff-side">
    ${parts.filter((part) => part.op !== hidden).map((part) => html`<span class=${`diff-${part.op}`}>${visible(part.text)}</span>`)}
  </div>`;
}

function DiffRows({ title, a, b }: { title: string; a: string[]; b: string[] }) {
  const parts = diffTokens(a, b);
  const changed = parts.some((part) => part.op !== "same");
  return html`<h4>${title} ${changed ? "" : "(the same)"}</h4>
    <div class="diff-pair"><${Parts} parts=${parts} side="before" /><${Parts} parts=${parts} side="after" /></div>`;
}

export function DiffView({ a, b }: { a: Journey; b: Journey }) {
  const calls = Math.max(a.calls.length, b.calls.length);
  const label = (j: Journey) => `/${j.route} at ${new Date(j.at).toLocaleTimeString()} (code version ${j.codeVersion})`;
  return html`<article class="diff" data-testid="diff">
    <h2>Diff: ${label(a)} → ${label(b)}</h2>
    ${Array.from({ length: calls }, (_, k) => {
      const [ca, cb] = [a.calls[k], b.calls[k]];
      const generated = (c: typeof ca) => (c?.outcome.ok ? c.outcome.tokens : []);
      return html`<section>
        <h3>Model call ${k + 1}</h3>
        <${DiffRows} title="Prompt tokens" a=${texts(ca?.promptChips)} b=${texts(cb?.promptChips)} />
        <${DiffRows} title="Generated tokens" a=${texts(generated(ca))} b=${texts(generated(cb))} />
      </section>`;
    })}
  </article>`;
}

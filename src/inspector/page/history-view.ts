/** The last requests, newest first: pick one to see its journey, tick two to diff them. */
import type { Journey } from "../journal.ts";
import { html } from "./html.ts";

interface HistoryProps {
  journeys: readonly Journey[];
  selected: string | undefined;
  compared: readonly string[];
  onSelect: (id: string) => void;
  onCompare: (id: string) => void;
}

export function HistoryView({ journeys, selected, compared, onSelect, onCompare }: HistoryProps) {
  return html`<nav class="history" data-testid="history">
    <h2>History</h2>
    ${journeys.length === 0 ? html`<p class="facts">No requests yet: send one.</p>` : null}
    <ol reversed>
      ${[...journeys].reverse().map(
        (journey) =>
          html`<li class=${journey.id === selected ? "selected" : ""}>
            <input type="checkbox" title="compare" data-testid="compare" checked=${compared.includes(journey.id)} onChange=${() => onCompare(journey.id)} />
            <a href="#" onClick=${(event: Event) => {
              event.preventDefault();
              onSelect(journey.id);
            }}>
              ${new Date(journey.at).toLocaleTimeString()} /${journey.route} · ${journey.end ? journey.end.status : "…"} · v${journey.codeVersion}
            </a>
          </li>`,
      )}
    </ol>
  </nav>`;
}

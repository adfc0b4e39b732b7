/** The inspector page: the form and history on the left; the chosen journey, or a diff of two, on the right. */
import { useEffect, useState } from "preact/hooks";
import { DiffView } from "./diff-view.ts";
import { HistoryView } from "./history-view.ts";
import { html } from "./html.ts";
import { JourneyView } from "./journey-view.ts";
import { applyFeed, loadState, type FeedMessage, type LiveState } from "./live-state.ts";
import { RequestForm } from "./request-form.ts";

function useLiveState(): [LiveState | undefined, boolean] {
  const [state, setState] = useState<LiveState | undefined>();
  const [connected, setConnected] = useState(false);
  useEffect(() => {
    void loadState().then(setState);
    const feed = new EventSource("/api/events");
    feed.onopen = () => setConnected(true);
    feed.onerror = () => setConnected(false);
    feed.onmessage = (event) => setState((current) => current && applyFeed(current, JSON.parse(event.data) as FeedMessage));
    return () => feed.close();
  }, []);
  return [state, connected];
}

function SwapNotice({ state }: { state: LiveState }) {
  const swap = state.swaps.at(-1);
  if (!swap) return null;
  return html`<p class="swap" data-testid="swap-notice">
    Handler swapped: ${swap.file} saved at ${new Date(swap.at).toLocaleTimeString()}; the next request runs code version ${swap.codeVersion}.
  </p>`;
}

export function App() {
  const [state, connected] = useLiveState();
  const [selected, setSelected] = useState<string | undefined>();
  const [compared, setCompared] = useState<string[]>([]);
  if (!state) return html`<p>loading…</p>`;
  const journeys = state.journeys;
  const shown = journeys.find((journey) => journey.id === selected) ?? journeys.at(-1);
  const pair = journeys.filter((journey) => compared.includes(journey.id)); // oldest first: the diff reads before -> after
  const toggle = (id: string) => setCompared(compared.includes(id) ? compared.filter((c) => c !== id) : [...compared, id].slice(-2));
  return html`<header>
      <h1>tsserve inspector · ${state.modelName} <small>${state.hello ? state.hello.handler : "(no request yet)"}</small></h1>
      <span class=${connected ? "live" : "offline"}>${connected ? "live" : "offline"}</span>
    </header>
    <${SwapNotice} state=${state} />
    <main>
      <aside>
        <${RequestForm} key=${state.hello?.handler ?? ""} hello=${state.hello} />
        <${HistoryView} journeys=${journeys} selected=${shown?.id} compared=${compared} onSelect=${setSelected} onCompare=${toggle} />
      </aside>
      <section class="detail">
        ${pair.length === 2 ? html`<${DiffView} a=${pair[0]} b=${pair[1]} />` : shown ? html`<${JourneyView} journey=${shown} />` : html`<p class="facts">Send a request: its journey shows here.</p>`}
      </section>
    </main>`;
}

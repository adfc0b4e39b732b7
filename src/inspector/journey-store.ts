/**
 * The last requests, put together from their journal events as they arrive
 * (in any order: each post travels on its own), in memory only.
 */
import type { JournalEvent, Journey } from "./journal.ts";

export const KEPT_JOURNEYS = 50;

export type Hello = Extract<JournalEvent, { kind: "hello" }>;

export class JourneyStore {
  private readonly journeys = new Map<string, Journey>();
  hello: Hello | undefined;
  codeVersion = 0;

  constructor(private readonly kept = KEPT_JOURNEYS) {}

  list(): Journey[] {
    return [...this.journeys.values()].sort((a, b) => a.at - b.at);
  }

  private journey(id: string): Journey {
    let journey = this.journeys.get(id);
    if (!journey) {
      journey = { id, codeVersion: this.codeVersion, at: Date.now(), route: "", body: null, streamed: "", calls: [], stages: [] };
      this.journeys.set(id, journey);
      for (const old of this.list().slice(0, Math.max(0, this.journeys.size - this.kept))) this.journeys.delete(old.id);
    }
    return journey;
  }

  /** Applies one event; answers the journeys it changed. */
  apply(event: JournalEvent): Journey[] {
    switch (event.kind) {
      case "hello":
        this.hello = event;
        return [];
      case "start":
        return [Object.assign(this.journey(event.id), { at: event.at, route: event.route, body: event.body })];
      case "delta":
        return event.ids.map((id) => Object.assign(this.journey(id), { streamed: this.journey(id).streamed + event.text }));
      case "call":
        return event.ids.map((id) => {
          const journey = this.journey(id);
          journey.calls = [...journey.calls, event.call].sort((a, b) => a.call - b.call);
          return journey;
        });
      case "end":
        return [Object.assign(this.journey(event.id), { stages: event.stages, end: event.end })];
    }
  }
}

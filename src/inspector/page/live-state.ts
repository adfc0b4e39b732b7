/** What the page knows: the server's state at load, then each update its event feed sends. */
import type { Journey } from "../journal.ts";
import type { Hello } from "../journey-store.ts";

export interface Swap {
  codeVersion: number;
  file: string;
  at: number;
}

export interface LiveState {
  modelName: string;
  hello: Hello | null;
  codeVersion: number;
  journeys: Journey[];
  swaps: Swap[];
}

export type FeedMessage = { type: "hello"; hello: Hello } | { type: "journey"; journey: Journey } | ({ type: "swap" } & Swap);

export function applyFeed(state: LiveState, message: FeedMessage): LiveState {
  switch (message.type) {
    case "hello":
      return { ...state, hello: message.hello };
    case "journey": {
      const others = state.journeys.filter((journey) => journey.id !== message.journey.id);
      return { ...state, journeys: [...others, message.journey].sort((a, b) => a.at - b.at) };
    }
    case "swap":
      return {
        ...state,
        codeVersion: message.codeVersion,
        swaps: [...state.swaps, { codeVersion: message.codeVersion, file: message.file, at: message.at }],
      };
  }
}

export async function loadState(): Promise<LiveState> {
  const response = await fetch("/api/state");
  return { ...((await response.json()) as Omit<LiveState, "swaps">), swaps: [] };
}

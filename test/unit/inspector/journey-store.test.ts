import { describe, expect, it } from "vitest";
import { JourneyStore } from "../../../src/inspector/journey-store.ts";
import type { ModelCall } from "../../../src/inspector/journal.ts";

const call = (n: number): ModelCall => ({
  call: n,
  prompt: "p",
  promptChips: [],
  params: {},
  outcome: { ok: false, status: 400, message: "no" },
  ms: 1,
});

describe("the journey store", () => {
  it("puts a request together from events in any order, under the code version it arrived in", () => {
    const store = new JourneyStore();
    store.codeVersion = 2;
    store.apply({ kind: "end", id: "a", stages: [{ stage: "inference", ms: 3 }], end: { status: 200, body: "ok" } });
    store.apply({ kind: "call", ids: ["a"], call: call(2) });
    store.apply({ kind: "call", ids: ["a"], call: call(1) });
    store.apply({ kind: "delta", ids: ["a"], text: "o" });
    store.apply({ kind: "delta", ids: ["a"], text: "k" });
    const [journey] = store.apply({ kind: "start", id: "a", at: 5, route: "v1/completions", body: { prompt: "p" } });
    expect(journey).toMatchObject({ id: "a", codeVersion: 2, at: 5, route: "v1/completions", streamed: "ok", end: { status: 200 } });
    expect(journey!.calls.map((c) => c.call)).toEqual([1, 2]);
  });

  it("keeps the last N requests", () => {
    const store = new JourneyStore(3);
    for (let k = 0; k < 5; k++) store.apply({ kind: "start", id: `r${k}`, at: k, route: "", body: null });
    expect(store.list().map((journey) => journey.id)).toEqual(["r2", "r3", "r4"]);
  });
});

// The runtime's dispatch by route (url_path): the handler's own path, a route
// it declares, an unknown path (404), and how replies and failures become
// protocol outcomes (RawBody, a route's own error body).
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { Handler } from "../../../src/handler/handler-class.ts";
import type { StageContext } from "../../../src/handler/context.ts";
import { RequestFailure, type Maybe } from "../../../src/handler/failure.ts";
import { RawBody } from "../../../src/handler/raw-body.ts";
import type { Route, RouteCall } from "../../../src/handler/route.ts";
import { groupByPath, runBatch } from "../../../src/runtime/pipeline.ts";
import { makeContext } from "../../../src/testing/index.ts";

/** Echoes `{word}` on its own path; answers "echo/upper" and "text" routes. */
class EchoHandler extends Handler<{ word: string }> {
  readonly requestSchema = z.object({ word: z.string() });
  readonly seen: string[] = [];
  override routes(): Route[] {
    return [
      {
        path: "echo/upper",
        handle: async (calls: readonly RouteCall[], ctx: StageContext) => {
          this.seen.push(`upper at ${ctx.requestIndices.join(",")}`);
          return calls.map((call): Maybe<unknown> => {
            const word = (call.body as { word?: unknown } | null)?.word;
            return typeof word === "string" ? { upper: word.toUpperCase() } : RequestFailure.badRequest("word: required", "word");
          });
        },
        errorBody: (failure) => ({ problem: failure.message }),
      },
      { path: "/text/", handle: async (calls) => calls.map(() => new RawBody("plain\n", "text/plain")) },
      { path: "broken", handle: async () => [] },
    ];
  }
  async preprocess(requests: { word: string }[]) {
    return requests.map((r) => r.word);
  }
  async inference(inputs: string[]) {
    return inputs.map((w) => w + w);
  }
  async postprocess(outputs: string[]) {
    return outputs.map((text) => ({ text }));
  }
}

const ctx = makeContext();

describe("runBatch routes by url_path", () => {
  it("sends each request of a mixed batch to its own route, in batch positions", async () => {
    const handler = new EchoHandler();
    const outcomes = await runBatch(handler, ctx, [
      { body: { word: "a" } },
      { body: { word: "b" }, url_path: "echo/upper" },
      { body: { word: "c" }, url_path: "" },
      { body: { word: "d" }, url_path: "/echo/upper/" },
    ]);
    expect(outcomes).toEqual([
      { ok: true, body: { text: "aa" } },
      { ok: true, body: { upper: "B" } },
      { ok: true, body: { text: "cc" } },
      { ok: true, body: { upper: "D" } },
    ]);
    expect(handler.seen).toEqual(["upper at 1,3"]);
  });

  it("answers an unknown path with 404 naming it and the paths the model has; its batch mates are served", async () => {
    const outcomes = await runBatch(new EchoHandler(), ctx, [{ body: {}, url_path: "v2/nothing" }, { body: { word: "x" } }]);
    expect(outcomes[0]).toMatchObject({ ok: false, status: 404, field: "url_path" });
    expect((outcomes[0] as { message: string }).message).toBe(
      'url_path: no route "v2/nothing" on this model (it answers "", "echo/upper", "/text/", "broken")',
    );
    expect(outcomes[1]).toEqual({ ok: true, body: { text: "xx" } });
  });

  it("gives a route's failures the route's own error body, and a RawBody its content type", async () => {
    const outcomes = await runBatch(new EchoHandler(), ctx, [
      { body: { nope: 1 }, url_path: "echo/upper" },
      { body: null, url_path: "text" },
    ]);
    expect(outcomes).toEqual([
      { ok: false, status: 400, message: "word: required", field: "word", body: { problem: "word: required" } },
      { ok: true, body: "plain\n", content_type: "text/plain" },
    ]);
  });

  it("fails every request of a route that answers with the wrong number of replies", async () => {
    const outcomes = await runBatch(new EchoHandler(), ctx, [
      { body: {}, url_path: "broken" },
      { body: {}, url_path: "broken" },
    ]);
    for (const outcome of outcomes)
      expect(outcome).toMatchObject({ ok: false, status: 500, message: 'route "broken" returned 0 replies for 2 requests' });
  });

  it("keeps the handler's own path exactly as before: validation failures name the field", async () => {
    const outcomes = await runBatch(new EchoHandler(), ctx, [{ body: { word: 3 } }, { body: null, body_error: "body: is not valid JSON" }]);
    expect(outcomes[0]).toMatchObject({ ok: false, status: 400, field: "word" });
    expect(outcomes[1]).toEqual({ ok: false, status: 400, message: "body: is not valid JSON", field: "body" });
  });

  it("groups paths in order of first appearance, normalizing slashes", () => {
    expect([...groupByPath([{ body: 1, url_path: "a" }, { body: 2 }, { body: 3, url_path: "/a" }])]).toEqual([
      ["a", [0, 2]],
      ["", [1]],
    ]);
  });
});

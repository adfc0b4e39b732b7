// runStages and the one-answer-per-item rule that stages and routes share.
import { describe, expect, it } from "vitest";
import { RequestFailure, isFailure } from "../../../src/handler/failure.ts";
import { oneAnswerPerItem, runStages, type Stage } from "../../../src/handler/stages.ts";
import { FakeModel, makeContext } from "../../../src/testing/index.ts";

const base = { ...makeContext(), stream: () => {} };

describe("oneAnswerPerItem", () => {
  it("passes an array of one answer per item through unchanged", async () => {
    expect(await oneAnswerPerItem("stage", 2, async () => ["a", "b"])).toEqual(["a", "b"]);
  });

  it("fails every item, naming the caller and the count, when the count is wrong", async () => {
    const answers = await oneAnswerPerItem('route "x"', 2, async () => ["only one"]);
    expect(answers).toHaveLength(2);
    for (const answer of answers) expect(answer).toMatchObject({ status: 500, message: 'route "x" returned 1 replies for 2 requests' });
  });

  it("fails every item when the answer is not an array", async () => {
    const answers = await oneAnswerPerItem("handler stage", 3, async () => undefined as never);
    expect(answers.map((a) => (a as RequestFailure).message)).toEqual(Array(3).fill("handler stage returned undefined for 3 requests"));
  });

  it("turns a throw into a failure of every item, status kept", async () => {
    const answers = await oneAnswerPerItem("stage", 2, async () => {
      throw RequestFailure.badRequest("prompt: too long", "prompt");
    });
    expect(answers.every(isFailure)).toBe(true);
    expect(answers[1]).toMatchObject({ status: 400, message: "prompt: too long" });
  });
});

describe("runStages", () => {
  it("fails all values of a stage that answers with the wrong count, and runs no later stage", async () => {
    let laterRan = false;
    const stages: Stage[] = [
      async (items) => items.slice(1),
      async (items) => {
        laterRan = true;
        return items;
      },
    ];
    const results = await runStages(stages, ["a", "b"], [0, 1], base);
    expect(results).toMatchObject([
      { status: 500, message: "handler stage returned 1 replies for 2 requests" },
      { status: 500, message: "handler stage returned 1 replies for 2 requests" },
    ]);
    expect(laterRan).toBe(false);
  });

  it("drops only the value whose stage output is a failure", async () => {
    const stages: Stage[] = [
      async (items) => items.map((item) => (item === "bad" ? RequestFailure.badRequest("no", "prompt") : item)),
      async (items, ctx) => items.map((item) => `${item}@${ctx.requestIndices.join(",")}`),
    ];
    const results = await runStages(stages, ["a", "bad", "c"], [4, 5, 6], base);
    expect(results[0]).toBe("a@4,6");
    expect(results[1]).toMatchObject({ status: 400 });
    expect(results[2]).toBe("c@4,6");
  });
});

describe("runStages and the request's AbortSignal", () => {
  it("starts no stage once the signal has aborted: the values left fail with 499 naming why", async () => {
    const controller = new AbortController();
    const ran: string[] = [];
    const stages: Stage[] = [
      async (items) => {
        ran.push("preprocess");
        return items;
      },
      async (items) => {
        ran.push("inference");
        controller.abort(new Error("the handler did not answer within 2 s"));
        return items;
      },
      async (items) => {
        ran.push("postprocess");
        return items;
      },
    ];
    const results = await runStages(stages, ["a", "b"], [0, 1], { ...base, signal: controller.signal });
    expect(ran).toEqual(["preprocess", "inference"]);
    for (const result of results) {
      expect(result).toMatchObject({
        status: 499,
        message: "the request was cancelled before this stage: the handler did not answer within 2 s",
      });
    }
  });

  it("passes the signal to each stage's context", async () => {
    const controller = new AbortController();
    let seen: AbortSignal | undefined;
    await runStages(
      [
        async (items, ctx) => {
          seen = ctx.signal;
          return items;
        },
      ],
      ["a"],
      [0],
      { ...base, signal: controller.signal },
    );
    expect(seen).toBe(controller.signal);
  });
});

describe("FakeModel and a cancelled call", () => {
  it("rejects a generate whose signal has aborted, as the real model does", async () => {
    const model = new FakeModel();
    const request = {
      prompt: "x",
      max_tokens: 1,
      temperature: 0,
      top_p: 1,
      top_k: 0,
      repetition_penalty: 1,
      seed: null,
      stop: [],
      logprobs: 0,
      num_sequences: 1,
      echo: false,
      stream: false,
    };
    await expect(model.generate([request], { signal: AbortSignal.abort(new Error("the request timed out")) })).rejects.toThrow(
      "the request timed out",
    );
    await expect(model.generate([request])).resolves.toHaveLength(1);
  });
});

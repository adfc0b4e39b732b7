// What `npm run demo` shows a person per request: the request in one line,
// "<model> says: <text>", token counts and time; not the whole body.
import { describe, expect, it } from "vitest";
import { describeAnswer } from "../../../scripts/demo-interface.ts";

const REQUEST = { messages: [{ role: "user", content: "What is the capital of France?" }], max_tokens: 48, temperature: 0 };
const BODY = JSON.stringify({
  id: "cmpl-1",
  object: "text_completion",
  choices: [
    { text: "The capital of France is Paris.", index: 0, finish_reason: "stop", logprobs: { tokens: ["The"], token_logprobs: [-0.1] } },
  ],
  usage: { prompt_tokens: 37, completion_tokens: 7, total_tokens: 44 },
  raw_compute_time: 0.3141,
});

describe("describeAnswer", () => {
  it("prints the request in one line, what the model says, the token counts and the times", () => {
    expect(describeAnswer("smollm2-135m-instruct", "a chat request", REQUEST, 200, BODY, 0.52)).toBe(
      [
        "== smollm2-135m-instruct: a chat request",
        '   {"messages":[{"role":"user","content":"What is the capital of France?"}],"max_tokens":48,"temperature":0}',
        "== smollm2-135m-instruct says: The capital of France is Paris.",
        "   37 prompt + 7 completion = 44 tokens, finish_reason stop, 0.52 s, model 0.31 s",
      ].join("\n"),
    );
  });

  it("leaves out the logprobs and the rest of the body", () => {
    expect(describeAnswer("m", "r", REQUEST, 200, BODY, 1)).not.toMatch(/logprobs|cmpl-1|text_completion/);
  });

  it("indents the lines of a multi-line answer under its first", () => {
    const body = JSON.stringify({
      choices: [{ text: "one\ntwo", finish_reason: "length" }],
      usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
    });
    expect(describeAnswer("m", "r", {}, 200, body, 1).split("\n").slice(2, 4)).toEqual(["== m says: one", "   two"]);
  });

  it("shows an error answer whole, with its status", () => {
    const body = '{"error": {"code": 400, "message": "max_tokens: must be ≥ 0", "field": "max_tokens"}}\n';
    expect(describeAnswer("m", "bad", { max_tokens: -1 }, 400, body, 0.01).split("\n").at(-1)).toBe(
      `== m answered HTTP 400: ${body.trim()}`,
    );
  });
});

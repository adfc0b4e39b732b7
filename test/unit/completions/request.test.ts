import { describe, expect, it } from "vitest";
import { CompletionRequest, completionRequestSchema } from "../../../src/completions/request.ts";
import { parseOrFail } from "../../../src/handler/validate.ts";
import { RequestFailure } from "../../../src/handler/failure.ts";
import { z } from "zod";
import SEED_EXAMPLE from "../../fixtures/seed-request.json" with { type: "json" };

const ok = (body: unknown) => {
  const result = parseOrFail(CompletionRequest, body);
  if (result instanceof RequestFailure) throw new Error(`refused: ${result.message}`);
  return result;
};
const refused = (body: unknown) => {
  const result = parseOrFail(CompletionRequest, body);
  if (!(result instanceof RequestFailure)) throw new Error(`accepted: ${JSON.stringify(result)}`);
  return result;
};

describe("completion request: accepted forms", () => {
  it("fills the seed's defaults for a bare prompt", () => {
    expect(ok({ prompt: "hi" })).toEqual({
      prompt: "hi",
      seed: 0,
      max_tokens: 16,
      temperature: 0.8,
      top_p: 0,
      top_k: 50,
      repetition_penalty: 1,
      logprobs: 0,
      stop: [],
      n: 1,
      best_of: 1,
      echo: false,
      stream: false,
    });
  });
  it("keeps every field of the seed's example request", () => {
    expect(ok(SEED_EXAMPLE)).toMatchObject({ ...SEED_EXAMPLE, stop: [] });
  });
  it("treats null as absent (HELM sends stop: null)", () => {
    expect(ok({ prompt: "x", stop: null, n: null, best_of: null, echo: null, max_tokens: null, seed: null, messages: null })).toMatchObject(
      { stop: [], n: 1, best_of: 1, echo: false, max_tokens: 16, seed: 0 },
    );
    expect(ok({ prompt: "x", stop: null })).not.toHaveProperty("messages");
  });
  it("accepts unknown extra keys and leaves them out of the parsed request", () => {
    const parsed = ok({ prompt: "x", model: "together/llama", top_k_per_token: 1, frequency_penalty: 0 });
    expect(parsed.model).toBe("together/llama");
    expect(parsed).not.toHaveProperty("top_k_per_token");
  });
  it("turns a single stop string into a list", () => {
    expect(ok({ prompt: "x", stop: "\n" }).stop).toEqual(["\n"]);
  });
  it("defaults best_of to n", () => {
    expect(ok({ prompt: "x", n: 3 })).toMatchObject({ n: 3, best_of: 3 });
  });
  it("accepts messages instead of prompt", () => {
    expect(ok({ messages: [{ role: "user", content: "hi", name: "extra" }] }).messages).toEqual([{ role: "user", content: "hi" }]);
  });
  it("accepts the edges of every range", () => {
    expect(() =>
      ok({
        prompt: "",
        max_tokens: 0,
        temperature: 2,
        top_p: 1,
        top_k: 0,
        logprobs: 20,
        repetition_penalty: 0.01,
        stop: Array(16).fill("s"),
      }),
    ).not.toThrow();
    expect(() => ok({ prompt: "x", temperature: 0, top_p: 0, stop: ["x".repeat(256)], seed: -5 })).not.toThrow();
  });
  it("counts stop length in characters, not UTF-16 units", () => {
    expect(() => ok({ prompt: "x", stop: ["😀".repeat(256)] })).not.toThrow();
  });
});

// [description, body, expected message]
const BAD: [string, unknown, string][] = [
  ["a body that is not an object", "prompt", "body: must be a JSON object"],
  ["a body that is a list", [{ prompt: "x" }], "body: must be a JSON object"],
  ["a null body", null, "body: must be a JSON object"],
  ["neither prompt nor messages", { max_tokens: 3 }, "prompt: required (or give messages instead)"],
  [
    "both prompt and messages",
    { prompt: "x", messages: [{ role: "user", content: "y" }] },
    "messages: give either prompt or messages, not both",
  ],
  ["a prompt that is not a string", { prompt: ["a", "b"] }, "prompt: must be a string"],
  ["a numeric prompt", { prompt: 42 }, "prompt: must be a string"],
  ["empty messages", { messages: [] }, "messages: must contain at least one message"],
  ["messages that are not a list", { messages: "hi" }, "messages: must be a list of {role, content}"],
  [
    "a message with an unknown role",
    { messages: [{ role: "bot", content: "x" }] },
    'messages.0.role: must be one of "system", "user", "assistant"',
  ],
  ["a message whose content is not a string", { messages: [{ role: "user", content: 3 }] }, "messages.0.content: must be a string"],
  ["a message without content", { messages: [{ role: "user" }] }, "messages.0.content: must be a string"],
  ["negative max_tokens", { prompt: "x", max_tokens: -1 }, "max_tokens: must be ≥ 0"],
  ["fractional max_tokens", { prompt: "x", max_tokens: 1.5 }, "max_tokens: must be an integer"],
  ["max_tokens as a string", { prompt: "x", max_tokens: "16" }, "max_tokens: must be a number"],
  ["negative temperature", { prompt: "x", temperature: -0.1 }, "temperature: must be ≥ 0"],
  ["temperature above 2", { prompt: "x", temperature: 2.5 }, "temperature: must be ≤ 2"],
  ["non-finite temperature", { prompt: "x", temperature: Infinity }, "temperature: must be a finite number"],
  ["NaN temperature", { prompt: "x", temperature: NaN }, "temperature: must be a finite number"],
  ["top_p below 0", { prompt: "x", top_p: -0.5 }, "top_p: must be ≥ 0"],
  ["top_p above 1", { prompt: "x", top_p: 1.01 }, "top_p: must be ≤ 1"],
  ["negative top_k", { prompt: "x", top_k: -1 }, "top_k: must be ≥ 0"],
  ["fractional top_k", { prompt: "x", top_k: 2.5 }, "top_k: must be an integer"],
  ["zero repetition_penalty", { prompt: "x", repetition_penalty: 0 }, "repetition_penalty: must be > 0"],
  ["negative repetition_penalty", { prompt: "x", repetition_penalty: -1 }, "repetition_penalty: must be > 0"],
  ["negative logprobs", { prompt: "x", logprobs: -1 }, "logprobs: must be ≥ 0"],
  ["logprobs above 20", { prompt: "x", logprobs: 21 }, "logprobs: must be ≤ 20"],
  ["logprobs as a boolean", { prompt: "x", logprobs: true }, "logprobs: must be a number"],
  ["n below 1", { prompt: "x", n: 0 }, "n: must be ≥ 1"],
  ["best_of below n", { prompt: "x", n: 3, best_of: 2 }, "best_of: must be ≥ n (3)"],
  [
    "n above 1 with temperature 0",
    { prompt: "x", n: 2, temperature: 0 },
    "n: must be 1 when temperature is 0 (greedy decoding gives identical choices)",
  ],
  [
    "best_of above 1 with temperature 0",
    { prompt: "x", best_of: 2, temperature: 0 },
    "best_of: must be 1 when temperature is 0 (greedy decoding gives identical choices)",
  ],
  ["best_of above the limit", { prompt: "x", best_of: 21 }, "best_of: must be ≤ 20"],
  ["stop that is a number", { prompt: "x", stop: 5 }, "stop: must be a string or a list of strings"],
  ["stop with a non-string item", { prompt: "x", stop: ["a", 1] }, "stop: must be a string or a list of strings"],
  ["stop containing an empty string", { prompt: "x", stop: ["a", ""] }, "stop.1: must not be empty"],
  ["an empty stop string", { prompt: "x", stop: "" }, "stop: must not be empty"],
  [
    "more than 16 stop sequences",
    { prompt: "x", stop: Array.from({ length: 17 }, (_, i) => `s${i}`) },
    "stop: must contain at most 16 sequences",
  ],
  ["a stop sequence over 256 characters", { prompt: "x", stop: ["y".repeat(257)] }, "stop.0: must be at most 256 characters"],
  ["a fractional seed", { prompt: "x", seed: 0.5 }, "seed: must be an integer"],
  ["a seed as a string", { prompt: "x", seed: "42" }, "seed: must be a number"],
  ["a seed of 2^63", JSON.parse('{"prompt": "x", "seed": 9223372036854775808}'), "seed: must be an integer from -(2^53 - 1) to 2^53 - 1"],
  ["echo that is not a boolean", { prompt: "x", echo: "yes" }, "echo: must be true or false"],
  ["stream that is not a boolean", { prompt: "x", stream: 1 }, "stream: must be true or false"],
  ["a model that is not a string", { prompt: "x", model: 7 }, "model: must be a string"],
  [
    "stream with best_of above n",
    { prompt: "x", stream: true, best_of: 2 },
    "best_of: must equal n when stream is true (the best choices are known only at the end)",
  ],
  ["stream with echo", { prompt: "x", stream: true, echo: true }, "echo: is not supported with stream"],
];

describe("completion request: refusals name the field", () => {
  for (const [description, body, message] of BAD) {
    it(`refuses ${description}`, () => {
      const failure = refused(body);
      expect(failure.status).toBe(400);
      expect(failure.message).toBe(message);
      expect(message.startsWith(`${failure.field}: `)).toBe(true);
    });
  }
});

describe("completionRequestSchema with extra fields", () => {
  it("validates and keeps a handler's own fields next to the standard ones", () => {
    const schema = completionRequestSchema({ question: z.string({ error: "must be a string" }) });
    const parsed = schema.parse({ prompt: "x", question: "why?" });
    expect(parsed.question).toBe("why?");
    expect(parsed.max_tokens).toBe(16);
    const failure = parseOrFail(schema, { prompt: "x", question: 3 });
    expect(failure).toBeInstanceOf(RequestFailure);
    expect((failure as RequestFailure).message).toBe("question: must be a string");
  });
});

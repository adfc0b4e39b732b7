/**
 * The AgentInstruct chain-of-thought handler through tsserve/testing. The
 * expected prompts are written out by hand from AgentInstruct's HELM client
 * (two calls: explanation, then answer) and the Llama-2 handlers' raw-prompt
 * path (rewrite + rstrip behind an empty system block), not built with the
 * code under test.
 */
import { describe, expect, it } from "vitest";
import { FakeModel, runHandler } from "../../../src/testing/index.ts";
import { CompletionChunk, CompletionResponse } from "../../../src/completions/response.ts";
import { answerTrigger, pyStrList } from "../../../src/prompts/agentinstruct-cot.ts";
import type { GenerateRequest } from "../../../src/protocol/messages.ts";
import AgentInstruct, { type AgentInstructExtras } from "../../../handlers/llama-2-7b-chat-agentinstruct.ts";

const SYS = "[INST] <<SYS>>\n\n<</SYS>>\n\n";
const PREAMBLE = "You will be provided instructions for completing a task followed by a task to complete.\n\nInstructions:\n";
const EXPLAIN =
  "Follow the instructions to generate an explanation that reasons towards the correct answer to the task above. End the explanation with the correct answer. [/INST] Explanation: ";
const GENERATION = "Therefore, the answer to the task is below. Give the answer in the shortest form possible that will still be correct.";

const REQUEST = {
  instructions: "1. Read the question.\n2. Add the numbers.",
  prompt: "Question: What is 2 + 3?\nAnswer:",
  input_prefix: "Question: ",
  output_prefix: "Answer: ",
  max_tokens: 5,
  stop: ["\n"],
  temperature: 0.3,
  top_p: 0.9,
  top_k: 40,
  seed: 7,
  logprobs: 1,
};
const STAGE1_RAW = `${PREAMBLE}1. Read the question.\n2. Add the numbers.\n\nQuestion: What is 2 + 3?\nAnswer:\n${EXPLAIN}`;
/** The rewrite's rstrip eats the trigger's trailing space. */
const STAGE1 = `${SYS}${PREAMBLE}1. Read the question.\n2. Add the numbers.\n\nQuestion: What is 2 + 3?\nAnswer:\nFollow the instructions to generate an explanation that reasons towards the correct answer to the task above. End the explanation with the correct answer. [/INST] Explanation:`;
const EXPLANATION = "Two plus three is five. The answer is 5.  \n";
const STAGE2_RAW = `${STAGE1_RAW}Two plus three is five. The answer is 5.\n\n${GENERATION}\nAnswer: `;
const STAGE2 = `${SYS}${PREAMBLE}1. Read the question.\n2. Add the numbers.\n\nQuestion: What is 2 + 3?\nAnswer:\n${EXPLAIN}Two plus three is five. The answer is 5.\n\n${GENERATION}\nAnswer:`;

/** Stage 1 (call 0) explains, stage 2 (call 1) answers. */
const twoStages = (explanation = EXPLANATION, answer = "5") =>
  new FakeModel({ respond: (_request, call) => (call === 0 ? explanation : answer) });

const body = (outcome: unknown) => {
  expect(outcome).toMatchObject({ ok: true });
  return (outcome as { body: CompletionResponse & AgentInstructExtras }).body;
};

describe("llama-2-7b-chat-agentinstruct handler", () => {
  it("renders both stages byte for byte and feeds stage 1's explanation into stage 2", async () => {
    const model = twoStages();
    await runHandler(new AgentInstruct(), [REQUEST], { model });
    expect(model.calls).toHaveLength(2);
    expect(model.prompts).toEqual([STAGE1, STAGE2]);
    expect(model.prompts[1]!.startsWith(model.prompts[0]!)).toBe(true);
    expect(model.prompts[1]).toContain("Two plus three is five. The answer is 5.\n\nTherefore");
  });

  it("runs stage 1 with 512 tokens, the input prefix as stop and one sequence; stage 2 with the caller's parameters; each call names its stage", async () => {
    const model = twoStages();
    await runHandler(new AgentInstruct(), [{ ...REQUEST, n: 2, best_of: 3 }], { model });
    const [stage1, stage2] = model.requests as [GenerateRequest, GenerateRequest];
    expect(stage1).toEqual({
      prompt: STAGE1,
      max_tokens: 512,
      stop: ["Question: "],
      num_sequences: 1,
      logprobs: 0,
      echo: false,
      stream: false,
      temperature: 0.3,
      top_p: 0.9,
      top_k: 40,
      repetition_penalty: 1,
      seed: 7,
      stage: "explanation",
    });
    expect(stage2).toEqual({
      prompt: STAGE2,
      max_tokens: 5,
      stop: ["\n"],
      num_sequences: 3,
      logprobs: 1,
      echo: false,
      stream: false,
      temperature: 0.3,
      top_p: 0.9,
      top_k: 40,
      repetition_penalty: 1,
      seed: 7,
      stage: "answer",
    });
  });

  it("takes stage 1's max_tokens from the config, and from the request over the config", async () => {
    const fromConfig = twoStages();
    await runHandler(new AgentInstruct(), [REQUEST], { model: fromConfig, config: { handler: { explanation_max_tokens: 64 } } });
    expect(fromConfig.requests[0]!.max_tokens).toBe(64);
    const fromRequest = twoStages();
    await runHandler(new AgentInstruct(), [{ ...REQUEST, explanation_max_tokens: 9 }], {
      model: fromRequest,
      config: { handler: { explanation_max_tokens: 64 } },
    });
    expect(fromRequest.requests[0]!.max_tokens).toBe(9);
  });

  it("stops stage 1 at nothing when there is no input prefix", async () => {
    const model = twoStages();
    await runHandler(
      new AgentInstruct(),
      [
        { ...REQUEST, input_prefix: null },
        { ...REQUEST, input_prefix: "" },
      ],
      { model },
    );
    expect(model.calls[0]!.requests.map((r) => r.stop)).toEqual([[], []]);
  });

  it("answers with stage 2's choices, each with its full text, stage 1's explanation, and usage of both stages", async () => {
    const model = twoStages();
    const { outcomes } = await runHandler(new AgentInstruct(), [REQUEST], { model, modelName: "ai" });
    const response = body(outcomes[0]);
    expect(CompletionResponse.safeParse(response).success).toBe(true);
    expect(response.choices).toEqual([
      expect.objectContaining({ text: "5", index: 0, finish_reason: "stop", full_text: `${STAGE2_RAW}5` }),
    ]);
    // The fake model's tokens are characters: stage 1 read STAGE1 and wrote EXPLANATION; stage 2 read STAGE2 and wrote "5".
    const p1 = [...STAGE1].length,
      c1 = [...EXPLANATION].length,
      p2 = [...STAGE2].length;
    expect(response.explanation).toEqual({
      text: "Two plus three is five. The answer is 5.",
      finish_reason: "stop",
      usage: { prompt_tokens: p1, completion_tokens: c1, total_tokens: p1 + c1 },
      raw_compute_time: 0.001,
    });
    expect(response.usage).toEqual({ prompt_tokens: p1 + p2, completion_tokens: c1 + 1, total_tokens: p1 + c1 + p2 + 1 });
    expect(response.raw_compute_time).toBeCloseTo(0.002);
    expect(response).toMatchObject({ object: "text_completion", model: "ai" });
  });

  it("serves a batch in two batched passes, each request's answer prompt built from its own explanation", async () => {
    const model = new FakeModel({ respond: (_request, call, index) => (call === 0 ? `because ${index}` : `answer ${index}`) });
    const questions = ["Q: one?", "Q: two?", "Q: three?"];
    const { outcomes } = await runHandler(
      new AgentInstruct(),
      questions.map((prompt) => ({ ...REQUEST, prompt })),
      { model },
    );
    expect(model.calls.map((call) => call.requests.length)).toEqual([3, 3]);
    questions.forEach((question, i) => {
      const stage1Raw = `${PREAMBLE}1. Read the question.\n2. Add the numbers.\n\n${question}\n${EXPLAIN}`;
      expect(model.calls[0]!.requests[i]!.prompt).toBe(`${SYS}${stage1Raw.trimEnd()}`);
      expect(model.calls[1]!.requests[i]!.prompt).toBe(`${SYS}${stage1Raw}because ${i}\n\n${GENERATION}\nAnswer:`);
      const response = body(outcomes[i]);
      expect(response.choices[0]!.text).toBe(`answer ${i}`);
      expect(response.explanation.text).toBe(`because ${i}`);
      expect(response.choices[0]!.full_text).toBe(`${stage1Raw}because ${i}\n\n${GENERATION}\nAnswer: answer ${i}`);
    });
  });

  it("fails only the request whose explanation stage failed; its batch mates get their answers", async () => {
    const model = new FakeModel({
      respond: (_request, call, index) => {
        if (call === 0 && index === 1)
          return { ok: false, status: 400, message: "prompt: 600 tokens + max_tokens 512 exceed the context (512)" };
        return call === 0 ? `why ${index}` : `ans ${index}`;
      },
    });
    const { outcomes } = await runHandler(
      new AgentInstruct(),
      [0, 1, 2].map((i) => ({ ...REQUEST, prompt: `Q${i}` })),
      { model },
    );
    expect(outcomes[1]).toEqual({
      ok: false,
      status: 400,
      message: "explanation stage: prompt: 600 tokens + max_tokens 512 exceed the context (512)",
    });
    expect(model.calls[1]!.requests.map((r) => r.prompt.includes("why 0") || r.prompt.includes("why 2"))).toEqual([true, true]);
    expect(body(outcomes[0]).choices[0]!.text).toBe("ans 0");
    expect(body(outcomes[2]).choices[0]!.text).toBe("ans 1"); // stage 2's position 1 is request 2
  });

  it("refuses a request without instructions, naming the field, and serves its batch mates", async () => {
    const model = twoStages();
    const { outcomes } = await runHandler(new AgentInstruct(), [{ prompt: "Q" }, REQUEST, { ...REQUEST, instructions: 3 }], { model });
    expect(outcomes[0]).toEqual({ ok: false, status: 400, message: "instructions: required", field: "instructions" });
    expect(outcomes[2]).toEqual({ ok: false, status: 400, message: "instructions: must be a string", field: "instructions" });
    expect(outcomes[1]!.ok).toBe(true);
    expect(model.prompts).toEqual([STAGE1, STAGE2]);
  });

  it("refuses messages, a task of the wrong type, and an explanation budget below 1", async () => {
    const { outcomes } = await runHandler(new AgentInstruct(), [
      { instructions: "i", messages: [{ role: "user", content: "hi" }] },
      { ...REQUEST, task: 3 },
      { ...REQUEST, explanation_max_tokens: 0 },
      { ...REQUEST, input_prefix: "x".repeat(257) },
    ]);
    expect(outcomes.map((o) => (o.ok ? "ok" : o.message))).toEqual([
      "messages: not supported by the AgentInstruct handler; send the question as prompt",
      'task: must be "generation", a task name, or a list of labels',
      "explanation_max_tokens: must be ≥ 1",
      "input_prefix: must be at most 256 characters (it is stage 1's stop sequence)",
    ]);
  });

  it("picks the answer trigger from the task, or takes the request's own", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ task: "multiple_choice_joint" }, "Therefore, the correct multiple choice label (just the letter) to the task is below."],
      [{ task: ["Yes", "No"] }, "Therefore, the correct label among ['Yes', 'No'] (just the label) to the original task is below."],
      [{ answer_trigger: "So the answer is" }, "So the answer is"],
    ];
    for (const [fields, trigger] of cases) {
      const model = twoStages("E");
      await runHandler(new AgentInstruct(), [{ ...REQUEST, ...fields }], { model });
      expect(model.prompts[1]).toBe(`${SYS}${STAGE1_RAW}E\n\n${trigger}\nAnswer:`);
    }
  });

  it("uses the request's explanation trigger over the config's", async () => {
    const model = twoStages("E");
    const trigger = "Explain first.\n\nExplanation: ";
    await runHandler(new AgentInstruct(), [{ ...REQUEST, explanation_trigger: trigger }], {
      model,
      config: { handler: { explanation_trigger: "unused" } },
    });
    expect(model.prompts[0]).toBe(
      `${SYS}${PREAMBLE}1. Read the question.\n2. Add the numbers.\n\nQuestion: What is 2 + 3?\nAnswer:\nExplain first.\n\nExplanation:`,
    );
  });

  it("with echo, the answer's text starts with stage 2's prompt and full_text holds it once", async () => {
    const model = twoStages();
    const { outcomes } = await runHandler(new AgentInstruct(), [{ ...REQUEST, echo: true }], { model });
    const response = body(outcomes[0]);
    expect(response.choices[0]!.text).toBe(`${STAGE2}5`);
    expect(response.choices[0]!.full_text).toBe(`${STAGE2_RAW}5`);
  });

  it("streams stage 2 to the right request, the last chunk carrying the explanation and full text", async () => {
    const model = twoStages();
    const { outcomes, streamed } = await runHandler(
      new AgentInstruct(),
      [
        { ...REQUEST, prompt: "other" },
        { ...REQUEST, stream: true },
      ],
      { model },
    );
    expect(streamed).toHaveLength(1);
    expect(streamed[0]!.requestIndex).toBe(1);
    expect(CompletionChunk.parse(streamed[0]!.body).choices[0]).toMatchObject({ text: "5", finish_reason: null });
    const last = body(outcomes[1]) as unknown as Record<string, any>;
    expect(CompletionChunk.safeParse(last).success).toBe(true);
    expect(last.choices[0]).toMatchObject({ text: "", finish_reason: "stop", full_text: `${STAGE2_RAW}5` });
    expect(last.explanation.text).toBe("Two plus three is five. The answer is 5.");
  });
});

describe("AgentInstruct's answer triggers", () => {
  it("writes label lists as Python's str() does", () => {
    // Expected values printed by CPython 3: str([...]).
    expect(pyStrList(["Yes", "No"])).toBe("['Yes', 'No']");
    expect(
      pyStrList([
        "it's",
        'say "hi"',
        "both ' and \"",
        "back\\slash",
        "tab\there",
        "nbsp\u00a0x",
        "zw\u200bj",
        "é€😀",
        "bell\u0007",
        "\u2028",
      ]),
    ).toBe(
      `["it's", 'say "hi"', 'both \\' and "', 'back\\\\slash', 'tab\\there', 'nbsp\\xa0x', 'zw\\u200bj', 'é€😀', 'bell\\x07', '\\u2028']`,
    );
  });
  it("treats any task name containing multiple_choice as multiple choice, and other names verbatim", () => {
    expect(answerTrigger("multiple_choice")).toBe(answerTrigger("multiple_choice_separate"));
    expect(answerTrigger("sentiment")).toBe("Therefore, the correct label among sentiment (just the label) to the original task is below.");
  });
});

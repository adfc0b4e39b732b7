// The structured-output example handler, offline: the model is asked for the
// Answer schema's JSON Schema, and the handler answers with the typed value.
import { describe, expect, it } from "vitest";
import { z } from "zod";
import SmolLM2MultipleChoice, { Answer } from "../../../handlers/smollm2-multiple-choice.ts";
import { FakeModel, fakeOutcome, runHandler } from "../../../src/testing/index.ts";
import { greedyRequest } from "../../fixtures/greedy-request.ts";

const CHATML = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}<|im_start|>assistant\n";
const QUESTION = { question: "Which planet is largest?", choices: ["Mars", "Jupiter", "Venus", "Earth"] };

describe("smollm2-multiple-choice handler", () => {
  it("asks for the Answer schema and answers with the chosen option", async () => {
    const model = new FakeModel({
      info: { chat_template: CHATML },
      respond: () => '{"answer": "B", "explanation": "Jupiter is the largest planet."}',
    });
    const { outcomes } = await runHandler(new SmolLM2MultipleChoice(), [QUESTION], { model });
    expect(model.requests[0]!.structured).toEqual({ json_schema: z.toJSONSchema(Answer, { io: "input" }) });
    expect(model.prompts[0]).toMatch(
      /^<\|im_start\|>user\nWhich planet is largest\?\nA\) Mars\nB\) Jupiter\nC\) Venus\nD\) Earth\nAnswer with the letter/,
    );
    expect(model.prompts[0]).toMatch(/<\|im_start\|>assistant\n?$/);
    expect(outcomes[0]).toEqual({
      ok: true,
      body: {
        answer: "B",
        choice: "Jupiter",
        explanation: "Jupiter is the largest planet.",
        finish_reason: "stop",
        raw_compute_time: 0.001,
      },
    });
  });

  it("an answer cut by max_tokens is a 422 naming max_tokens, its batch mates unharmed", async () => {
    const model = new FakeModel({
      info: { chat_template: CHATML },
      script: ['{"answer": "A", "expl', '{"answer": "C", "explanation": "x"}'].map((text, i) =>
        fakeOutcome({ ...QUESTION_REQUEST, max_tokens: i === 0 ? 6 : 100 }, text),
      ),
    });
    const { outcomes } = await runHandler(new SmolLM2MultipleChoice(), [QUESTION, QUESTION], { model });
    expect(outcomes[0]).toMatchObject({ ok: false, status: 422, field: "max_tokens" });
    expect(outcomes[1]).toMatchObject({ ok: true, body: { answer: "C", choice: "Venus" } });
  });

  it("refuses a question without four choices", async () => {
    const { outcomes } = await runHandler(new SmolLM2MultipleChoice(), [{ question: "?", choices: ["a"] }], {
      model: new FakeModel({ info: { chat_template: CHATML } }),
    });
    expect(outcomes[0]).toMatchObject({ ok: false, status: 400, message: "choices: must list exactly 4 choices" });
  });
});

const QUESTION_REQUEST = greedyRequest("", 0);

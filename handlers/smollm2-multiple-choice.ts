// SmolLM2-135M-Instruct answering a multiple-choice question with a typed,
// structured answer: the zod schema `Answer` is both what the model's decoding
// is constrained to (its JSON Schema, in the shim's engine) and the type the
// handler reads the answer with. Serve it with configs/smollm2-135m-instruct.yaml.
//
//   POST /predictions/<model> {"question": "Which planet is largest?", "choices": ["Mars", "Jupiter", "Venus", "Earth"]}
//   -> {"answer": "B", "choice": "Jupiter", "explanation": "...", "finish_reason": "stop", "raw_compute_time": 0.8}
import { z } from "zod";
import {
  ChatTemplateSection,
  Handler,
  RequestFailure,
  generateStructured,
  renderChatTemplate,
  type GenerateRequest,
  type Maybe,
  type StageContext,
} from "../src/index.ts";

export const LETTERS = ["A", "B", "C", "D"] as const;

/** What the model must answer: a letter and a short explanation. */
export const Answer = z.object({
  answer: z.enum(LETTERS),
  explanation: z.string().min(1).max(300),
});
export type Answer = z.output<typeof Answer>;

export const MultipleChoiceRequest = z.object({
  question: z.string().min(1),
  choices: z.array(z.string().min(1)).length(LETTERS.length, { error: `must list exactly ${LETTERS.length} choices` }),
  max_tokens: z.number().int().min(1).max(1024).default(160),
  temperature: z.number().min(0).max(2).default(0),
  seed: z.number().int().default(0),
});
export type MultipleChoiceRequest = z.output<typeof MultipleChoiceRequest>;

interface Question {
  request: MultipleChoiceRequest;
  generate: GenerateRequest;
}

export interface AnsweredQuestion extends Answer {
  /** The text of the chosen option. */
  choice: string;
  finish_reason: "stop" | "length";
  raw_compute_time: number;
}

/** The user turn: the question, its lettered options, and how to answer. */
export function questionText(request: MultipleChoiceRequest): string {
  const options = request.choices.map((choice, i) => `${LETTERS[i]}) ${choice}`).join("\n");
  return `${request.question}\n${options}\nAnswer with the letter of the correct option and a one-sentence explanation, in JSON.`;
}

export default class SmolLM2MultipleChoice extends Handler<MultipleChoiceRequest, ChatTemplateSection, Question, AnsweredQuestion> {
  readonly requestSchema = MultipleChoiceRequest;
  override readonly configSchema = ChatTemplateSection;

  async preprocess(requests: MultipleChoiceRequest[], ctx: StageContext<ChatTemplateSection>): Promise<Maybe<Question>[]> {
    const info = ctx.model.info;
    const template = ctx.config.handler.chat_template ?? info.chat_template;
    if (!template) throw new Error("this handler needs a chat model: the model has no chat template");
    return requests.map((request) => {
      const prompt = renderChatTemplate(template, [{ role: "user", content: questionText(request) }], {
        bosToken: info.bos_token,
        eosToken: info.eos_token,
        addGenerationPrompt: true,
      });
      return { request, generate: generateRequest(prompt, request) };
    });
  }

  async inference(questions: Question[], ctx: StageContext<ChatTemplateSection>): Promise<Maybe<AnsweredQuestion>[]> {
    const outcomes = await generateStructured(
      ctx.model,
      questions.map((q) => q.generate),
      Answer,
    );
    return outcomes.map((outcome, i): Maybe<AnsweredQuestion> => {
      if (!outcome.ok) return new RequestFailure(outcome.status, outcome.message);
      const [sequence] = outcome.sequences;
      if (!sequence) return new RequestFailure(500, "the model returned no sequence");
      if (!sequence.parsed.success) {
        return new RequestFailure(422, `the model's answer is incomplete: ${sequence.parsed.error}; raise max_tokens`, "max_tokens");
      }
      const { answer, explanation } = sequence.parsed.value;
      return {
        answer,
        choice: questions[i]!.request.choices[LETTERS.indexOf(answer)]!,
        explanation,
        finish_reason: sequence.finish_reason,
        raw_compute_time: outcome.outcome.compute_time,
      };
    });
  }

  async postprocess(answers: AnsweredQuestion[]): Promise<Maybe<unknown>[]> {
    return answers;
  }
}

function generateRequest(prompt: string, request: MultipleChoiceRequest): GenerateRequest {
  return {
    prompt,
    max_tokens: request.max_tokens,
    temperature: request.temperature,
    top_p: 1,
    top_k: 0,
    repetition_penalty: 1,
    seed: request.seed,
    stop: [],
    logprobs: 0,
    num_sequences: 1,
    echo: false,
    stream: false,
  };
}

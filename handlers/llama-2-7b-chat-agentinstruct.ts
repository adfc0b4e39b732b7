// Llama-2-7b-chat with AgentInstruct's zero-shot chain of thought, server side:
// one request carries the instructions, the question and the triggers, and
// `inference` runs both stages (explanation, then answer) that AgentInstruct's
// HELM client used to send as two HTTP calls. Each stage's raw prompt goes
// through the Llama-2 chat handlers' raw-prompt path (the AgentInstruct
// rewrite behind an empty system block), as the two calls did.
//
// Request: the completion request, with `prompt` holding the question (the
// prompt HELM builds for the task), plus:
//   instructions            (required) the agent's instructions for the dataset
//   input_prefix            stage 1 stops there (HELM's input prefix, e.g. "Question: "); none when absent or ""
//   output_prefix           appended after the answer trigger (e.g. "Answer: "); default ""
//   task                    "generation" (default), a name containing "multiple_choice", or a list of labels
//   answer_trigger          overrides the trigger derived from `task`
//   explanation_trigger     overrides the config's (default: the Llama-2 chat trigger ending "[/INST] Explanation: ")
//   explanation_max_tokens  overrides the config's (default 512)
// Stage 1 samples one sequence with the request's temperature/top_p/top_k/
// repetition_penalty/seed; stage 2 uses every field of the request (max_tokens,
// stop, n, best_of, logprobs, echo, stream).
//
// Response: stage 2's completion body (choices, usage, raw_compute_time, ...)
// where each choice also has `full_text` (stage 2's raw prompt + the answer,
// as the HELM client assembled it), plus `explanation: {text, finish_reason,
// usage, raw_compute_time}` for stage 1; `usage` and `raw_compute_time` count
// both stages. Streamed (`stream: true`): stage 2's text arrives in chunks, the
// last chunk carries `explanation` and `full_text` too.
import { z } from "zod";
import {
  CompletionHandler,
  RequestFailure,
  REQUEST_LIMITS,
  answerPrompt,
  answerTrigger,
  cleanExplanation,
  completionRequestSchema,
  explanationPrompt,
  extendHandlerSection,
  generatedTokens,
  llama2RawPrompt,
  LLAMA2_CHAT_EXPLANATION_TRIGGER,
  type CompletionInput,
  type CompletionOutput,
  type CompletionResponse,
  type Maybe,
  type StageContext,
  type Usage,
} from "../src/index.ts";

export const AgentInstructSection = extendHandlerSection({
  /** Stage 1's max_tokens (the client's 512); a request's `explanation_max_tokens` overrides it. */
  explanation_max_tokens: z.number().int().min(1).default(512),
  /** The text that ends stage 1's prompt; a request's `explanation_trigger` overrides it. */
  explanation_trigger: z.string().default(LLAMA2_CHAT_EXPLANATION_TRIGGER),
});
export type AgentInstructSection = z.output<typeof AgentInstructSection>;

const text = (what = "must be a string") => z.string({ error: (issue) => (issue.input === undefined ? "required" : what) });
const optional = <T extends z.ZodType>(schema: T) => schema.nullable().optional();

export const AgentInstructRequest = completionRequestSchema({
  instructions: text(),
  input_prefix: optional(
    text().refine((s) => [...s].length <= REQUEST_LIMITS.maxStopLength, {
      error: `must be at most ${REQUEST_LIMITS.maxStopLength} characters (it is stage 1's stop sequence)`,
    }),
  ),
  output_prefix: optional(text()),
  task: optional(z.union([z.string(), z.array(z.string()).min(1)], { error: 'must be "generation", a task name, or a list of labels' })),
  answer_trigger: optional(text()),
  explanation_trigger: optional(text()),
  explanation_max_tokens: optional(
    z.number({ error: "must be a number" }).int({ error: "must be an integer" }).min(1, { error: "must be ≥ 1" }),
  ),
});
export type AgentInstructRequest = z.output<typeof AgentInstructRequest>;

/** Stage 1's result, kept for the response of the request it explains. */
interface Explanation {
  /** Stage 1's text with trailing whitespace cut (what stage 2's prompt holds). */
  text: string;
  finish_reason: "stop" | "length";
  usage: Usage;
  raw_compute_time: number;
  /** Stage 2's raw prompt (before the Llama-2 formatting): `full_text` is this + the answer. */
  answerPrompt: string;
}

type Input = CompletionInput<AgentInstructRequest>;
type Output = CompletionOutput<AgentInstructRequest>;

export default class Llama2_7bChatAgentInstruct extends CompletionHandler<AgentInstructSection, AgentInstructRequest> {
  override readonly configSchema = AgentInstructSection;
  override readonly requestSchema = AgentInstructRequest;
  /** Stage 2's inputs -> their request's stage 1. */
  private readonly explanations = new WeakMap<Input, Explanation>();

  /** Stage 1's raw prompt: preamble, instructions, question, explanation trigger. */
  explanationRawPrompt(request: AgentInstructRequest, ctx: StageContext<AgentInstructSection>): string {
    return explanationPrompt({
      instructions: request.instructions,
      question: request.prompt ?? "",
      explanationTrigger: request.explanation_trigger ?? ctx.config.handler.explanation_trigger,
    });
  }

  /** The prompt preprocess hands to inference is stage 1's. */
  override formatPrompt(request: AgentInstructRequest, ctx: StageContext<AgentInstructSection>): string {
    if (request.messages) {
      throw RequestFailure.badRequest("messages: not supported by the AgentInstruct handler; send the question as prompt", "messages");
    }
    return llama2RawPrompt(this.explanationRawPrompt(request, ctx));
  }

  override async inference(inputs: Input[], ctx: StageContext<AgentInstructSection>): Promise<Maybe<Output>[]> {
    // Stage 1: every request's explanation, in one batched pass.
    const explained = await ctx.model.generate(
      inputs.map((input) => ({
        ...input.generate,
        max_tokens: input.request.explanation_max_tokens ?? ctx.config.handler.explanation_max_tokens,
        stop: input.request.input_prefix ? [input.request.input_prefix] : [],
        num_sequences: 1,
        logprobs: 0,
        echo: false,
        stream: false,
        stage: "explanation",
      })),
    );
    if (explained.length !== inputs.length) {
      throw new Error(`generate returned ${explained.length} outcomes for ${inputs.length} requests`);
    }

    // Stage 2: stage 1's prompt + explanation + the answer trigger, with the caller's parameters.
    const results: Maybe<Output>[] = new Array(inputs.length);
    const answering: { position: number; input: Input }[] = [];
    explained.forEach((outcome, position) => {
      const input = inputs[position]!;
      if (!outcome.ok) {
        results[position] = new RequestFailure(outcome.status, `explanation stage: ${outcome.message}`);
        return;
      }
      const sequence = outcome.sequences[0];
      if (!sequence) throw new Error("generate returned no sequence for the explanation stage");
      const { request } = input;
      const rawPrompt = answerPrompt({
        explanationPrompt: this.explanationRawPrompt(request, ctx),
        explanation: sequence.text,
        answerTrigger: request.answer_trigger ?? answerTrigger(request.task ?? "generation"),
        outputPrefix: request.output_prefix ?? "",
      });
      const prompt = llama2RawPrompt(rawPrompt);
      const next: Input = { ...input, prompt, generate: { ...this.generateRequest(request, prompt), stage: "answer" } };
      const completionTokens = generatedTokens(sequence);
      this.explanations.set(next, {
        text: cleanExplanation(sequence.text),
        finish_reason: sequence.finish_reason,
        usage: {
          prompt_tokens: outcome.prompt_tokens,
          completion_tokens: completionTokens,
          total_tokens: outcome.prompt_tokens + completionTokens,
        },
        raw_compute_time: outcome.compute_time,
        answerPrompt: rawPrompt,
      });
      answering.push({ position, input: next });
    });
    if (answering.length > 0) {
      // The base class's inference: one batched generate, stage 2 streamed when asked.
      const answers = await super.inference(
        answering.map((a) => a.input),
        { ...ctx, requestIndices: answering.map((a) => ctx.requestIndices[a.position]!) },
      );
      answers.forEach((answer, i) => {
        results[answering[i]!.position] = answer;
      });
    }
    return results;
  }

  /** Stage 2's body, each choice with its `full_text`, `explanation` for stage 1, usage and compute time of both stages. */
  override responseBody(output: Output, ctx: StageContext<AgentInstructSection>): CompletionResponse & AgentInstructExtras {
    const body = super.responseBody(output, ctx);
    const explanation = this.explanations.get(output.input);
    if (!explanation) throw new Error("no explanation stage recorded for this request");
    const { answerPrompt: rawPrompt, ...stage1 } = explanation;
    const answerText = (text: string) => (output.input.request.echo ? text.slice(output.input.prompt.length) : text);
    return {
      ...body,
      choices: body.choices.map((choice) => ({ ...choice, full_text: rawPrompt + answerText(choice.text) })),
      usage: {
        prompt_tokens: body.usage.prompt_tokens + stage1.usage.prompt_tokens,
        completion_tokens: body.usage.completion_tokens + stage1.usage.completion_tokens,
        total_tokens: body.usage.total_tokens + stage1.usage.total_tokens,
      },
      raw_compute_time: body.raw_compute_time + stage1.raw_compute_time,
      explanation: stage1,
    };
  }

  /** The last streamed chunk also carries `explanation` and each choice's `full_text` (its usage counts both stages). */
  override finalChunk(output: Output, ctx: StageContext<AgentInstructSection>): unknown {
    const body = this.responseBody(output, ctx);
    const chunk = super.finalChunk(output, ctx) as { choices: { index: number }[] };
    return {
      ...chunk,
      choices: chunk.choices.map((choice) => ({ ...choice, full_text: body.choices[choice.index]!.full_text })),
      explanation: body.explanation,
    };
  }
}

export interface AgentInstructExtras {
  choices: (CompletionResponse["choices"][number] & { full_text: string })[];
  explanation: Omit<Explanation, "answerPrompt">;
}

/**
 * AgentInstruct's zero-shot chain of thought, as its HELM client laid it out
 * (wang-research-lab/agentinstruct, `local_client.py`), in two stages:
 *
 *   stage 1 (explanation):
 *     "You will be provided instructions for completing a task followed by a task to complete.\n\n"
 *     + "Instructions:\n" + instructions + "\n\n" + question + "\n" + explanation trigger
 *   stage 2 (answer):
 *     stage 1's prompt + explanation (trailing whitespace cut) + "\n\n" + answer trigger + "\n" + output prefix
 *
 * These are raw prompts: a handler then formats each one for its model (the
 * Llama-2 chat handlers put it through the AgentInstruct rewrite behind an
 * empty system block, exactly as they format any raw `prompt`).
 */
import { pyRstrip } from "./whitespace.ts";

export const AGENTINSTRUCT_COT_PREAMBLE =
  "You will be provided instructions for completing a task followed by a task to complete.\n\nInstructions:\n";

const EXPLAIN =
  "Follow the instructions to generate an explanation that reasons towards the correct answer to the task above. End the explanation with the correct answer.";

/** The explanation trigger the client used for Llama-2 chat models: it closes the `[INST]` turn. */
export const LLAMA2_CHAT_EXPLANATION_TRIGGER = `${EXPLAIN} [/INST] Explanation: `;
/** The explanation trigger the client used for every other model. */
export const PLAIN_EXPLANATION_TRIGGER = `${EXPLAIN}\n\nExplanation: `;

/** What the task is: `"generation"`, a multiple-choice task (any name containing `multiple_choice`), or the list of labels of a classification. */
export type AgentInstructTask = string | readonly string[];

/**
 * The answer trigger for a task, as the client chose it: generation,
 * multiple choice (a task name containing `multiple_choice`, or a label list
 * holding it), else "the correct label among <labels>" with the labels
 * written as Python writes a list of strings (`['Yes', 'No']`).
 */
export function answerTrigger(task: AgentInstructTask): string {
  if (task === "generation") {
    return "Therefore, the answer to the task is below. Give the answer in the shortest form possible that will still be correct.";
  }
  if (typeof task === "string" ? task.includes("multiple_choice") : task.includes("multiple_choice")) {
    return "Therefore, the correct multiple choice label (just the letter) to the task is below.";
  }
  const labels = typeof task === "string" ? task : pyStrList(task);
  return `Therefore, the correct label among ${labels} (just the label) to the original task is below.`;
}

export interface ExplanationPromptParts {
  instructions: string;
  /** The task itself, as HELM's prompt for it (input prefix, input, output prefix). */
  question: string;
  explanationTrigger: string;
}

/** Stage 1's raw prompt. */
export function explanationPrompt(parts: ExplanationPromptParts): string {
  return `${AGENTINSTRUCT_COT_PREAMBLE}${parts.instructions}\n\n${parts.question}\n${parts.explanationTrigger}`;
}

export interface AnswerPromptParts {
  /** Stage 1's raw prompt (what `explanationPrompt` returned). */
  explanationPrompt: string;
  /** Stage 1's generated text, as generated (its trailing whitespace is cut here). */
  explanation: string;
  answerTrigger: string;
  outputPrefix: string;
}

/** The explanation as stage 2 uses it: stage 1's text with trailing whitespace cut (Python's `rstrip()`). */
export function cleanExplanation(text: string): string {
  return pyRstrip(text);
}

/** Stage 2's raw prompt. */
export function answerPrompt(parts: AnswerPromptParts): string {
  return `${parts.explanationPrompt}${cleanExplanation(parts.explanation)}\n\n${parts.answerTrigger}\n${parts.outputPrefix}`;
}

/**
 * Python's `str(list_of_str)`: `['a', "it's"]`. Each item is quoted as
 * Python's `repr` quotes it (single quotes unless the text holds a single
 * quote and no double quote), with backslashes and the quote escaped, and
 * every character Python deems unprintable (controls, format characters,
 * separators other than the space, unassigned code points) as `\xNN`,
 * `\uNNNN` or `\UNNNNNNNN`.
 */
export function pyStrList(items: readonly string[]): string {
  return `[${items.map(pyStrRepr).join(", ")}]`;
}

/** What Python's `str.isprintable()` rejects: categories C* and Z* except the ASCII space. */
const PY_UNPRINTABLE = /^[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]$/u;

function pyEscape(code: number): string {
  const hex = code.toString(16);
  if (code < 0x100) return `\\x${hex.padStart(2, "0")}`;
  if (code < 0x10000) return `\\u${hex.padStart(4, "0")}`;
  return `\\U${hex.padStart(8, "0")}`;
}

export function pyStrRepr(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (ch === "\\") out += "\\\\";
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch !== " " && PY_UNPRINTABLE.test(ch)) out += pyEscape(code);
    else out += ch;
  }
  return out + quote;
}

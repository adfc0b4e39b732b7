/**
 * The AgentInstruct legacy rewrite of a raw `prompt`, which the paper's
 * results depend on: ChatML markers become `<human>:`/`<bot>:` turns, end
 * markers vanish, and trailing whitespace is cut (Python's `rstrip()`),
 * always, even when the prompt has no markers.
 */
import { pyRstrip } from "./whitespace.ts";

/** In this order; each replaces every occurrence. */
export const AGENTINSTRUCT_REWRITES: readonly (readonly [string, string])[] = [
  ["<|im_start|>system\n", "<human>: "],
  ["<|im_start|>user\n", "<human>: "],
  ["<|im_start|>assistant\n", "<bot>: "],
  ["<|im_start|>user", "<human>:"],
  ["<|im_start|>assistant", "<bot>:"],
  ["\n<|im_end|>", ""],
  ["<|im_end|>", ""],
];

export function agentInstructRewrite(prompt: string): string {
  let out = prompt;
  for (const [from, to] of AGENTINSTRUCT_REWRITES) out = out.split(from).join(to);
  return pyRstrip(out);
}

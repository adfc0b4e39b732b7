/**
 * The Llama-2 chat format: byte for byte what transformers'
 * `apply_chat_template` renders with the `chat_template` published in
 * meta-llama/Llama-2-7b-chat-hf's tokenizer_config.json:
 *
 *   <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] {user} [/INST]
 *
 * The system message (optional, first) is folded into the first user turn;
 * each turn's content is stripped with Python's `str.strip()` (with a system
 * message, the strip applies to the folded text, so the first user message
 * keeps its leading whitespace, as in the template).
 *
 * Stricter than the template: a system message anywhere but first (the
 * template silently drops it at odd positions) and a conversation with only a
 * system message (the template renders "") are refused.
 */
import { splitConversation, type ChatMessage } from "./messages.ts";
import { pyStrip } from "./whitespace.ts";
import { agentInstructRewrite } from "./agentinstruct.ts";

export interface SpecialTokens {
  bosToken?: string;
  eosToken?: string;
}

export function llama2ChatPrompt(messages: readonly ChatMessage[], tokens: SpecialTokens = {}): string {
  const bos = tokens.bosToken ?? "<s>";
  const eos = tokens.eosToken ?? "</s>";
  const { system, turns } = splitConversation(messages);
  let out = "";
  turns.forEach((message, i) => {
    const content = i === 0 && system !== undefined ? `<<SYS>>\n${system}\n<</SYS>>\n\n${message.content}` : message.content;
    out += message.role === "user" ? `${bos}[INST] ${pyStrip(content)} [/INST]` : ` ${pyStrip(content)} ${eos}`;
  });
  return out;
}

/** What the Llama-2 chat handlers put before a raw (AgentInstruct-rewritten) prompt: an empty system block. */
export const LLAMA2_RAW_PROMPT_PREFIX = "[INST] <<SYS>>\n\n<</SYS>>\n\n";

/** A raw `prompt` as the Llama-2 chat handlers send it: the AgentInstruct rewrite behind an empty system block. */
export function llama2RawPrompt(prompt: string): string {
  return LLAMA2_RAW_PROMPT_PREFIX + agentInstructRewrite(prompt);
}

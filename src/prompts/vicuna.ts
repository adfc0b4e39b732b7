/**
 * Vicuna v1.1 (FastChat's `vicuna_v1.1` conversation template, separator
 * style ADD_COLON_TWO):
 *
 *   {system} USER: {user} ASSISTANT: {assistant}</s>USER: {user} ASSISTANT:
 *
 * A leading system message replaces the default system text (as FastChat's
 * OpenAI-compatible server does); the open `ASSISTANT:` turn is always
 * appended. Content is used as given (FastChat does not strip), and an empty
 * message renders as `ROLE:` with no separator, as in FastChat.
 */
import { splitConversation, type ChatMessage } from "./messages.ts";

export const VICUNA_V11_SYSTEM =
  "A chat between a curious user and an artificial intelligence assistant. " +
  "The assistant gives helpful, detailed, and polite answers to the user's questions.";

const ROLES = { user: "USER", assistant: "ASSISTANT" } as const;
const SEPS = [" ", "</s>"] as const;

export function vicunaV11Prompt(messages: readonly ChatMessage[], options: { defaultSystem?: string } = {}): string {
  const { system, turns } = splitConversation(messages);
  let out = (system ?? options.defaultSystem ?? VICUNA_V11_SYSTEM) + SEPS[0];
  turns.forEach((message, i) => {
    const role = ROLES[message.role as "user" | "assistant"];
    out += message.content ? `${role}: ${message.content}${SEPS[i % 2]}` : `${role}:`;
  });
  return `${out}${ROLES.assistant}:`;
}

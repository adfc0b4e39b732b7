/**
 * Chat messages as requests carry them, and the turn-order rule every chat
 * format here shares.
 */
import { RequestFailure } from "../handler/failure.ts";

export type ChatRole = "system" | "user" | "assistant";

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/**
 * Split an optional leading system message from the turns, and check that the
 * turns alternate user/assistant starting with user. Refusals name the
 * offending message (`messages.2.role`).
 */
export function splitConversation(messages: readonly ChatMessage[]): { system: string | undefined; turns: ChatMessage[] } {
  if (messages.length === 0) throw RequestFailure.badRequest("messages: must contain at least one message", "messages");
  const offset = messages[0]!.role === "system" ? 1 : 0;
  const system = offset === 1 ? messages[0]!.content : undefined;
  const turns = messages.slice(offset);
  if (turns.length === 0) {
    throw RequestFailure.badRequest("messages: must contain a user message after the system message", "messages");
  }
  turns.forEach((message, i) => {
    const field = `messages.${i + offset}.role`;
    if (message.role === "system") {
      throw RequestFailure.badRequest(
        `${field}: a system message may only come first (then roles alternate user/assistant/user/...)`,
        field,
      );
    }
    const expected = i % 2 === 0 ? "user" : "assistant";
    if (message.role !== expected) {
      throw RequestFailure.badRequest(
        `${field}: expected "${expected}", got "${message.role}" (roles must alternate user/assistant/user/..., starting with user)`,
        field,
      );
    }
  });
  return { system, turns };
}

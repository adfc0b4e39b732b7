export type { ChatMessage, ChatRole } from "./messages.ts";
export { splitConversation } from "./messages.ts";
export { llama2ChatPrompt, LLAMA2_RAW_PROMPT_PREFIX, type SpecialTokens } from "./llama-2-chat.ts";
export { agentInstructRewrite, AGENTINSTRUCT_REWRITES } from "./agentinstruct.ts";
export { vicunaV11Prompt, VICUNA_V11_SYSTEM } from "./vicuna.ts";
export { renderChatTemplate, compileChatTemplate, type ChatTemplateOptions } from "./chat-template.ts";
export { pyStrip, pyRstrip, pyLstrip } from "./whitespace.ts";

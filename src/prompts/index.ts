export type { ChatMessage, ChatRole } from "./messages.ts";
export { splitConversation } from "./messages.ts";
export { llama2ChatPrompt, llama2RawPrompt, LLAMA2_RAW_PROMPT_PREFIX, type SpecialTokens } from "./llama-2-chat.ts";
export {
  answerPrompt,
  answerTrigger,
  cleanExplanation,
  explanationPrompt,
  pyStrList,
  pyStrRepr,
  AGENTINSTRUCT_COT_PREAMBLE,
  LLAMA2_CHAT_EXPLANATION_TRIGGER,
  PLAIN_EXPLANATION_TRIGGER,
  type AgentInstructTask,
  type AnswerPromptParts,
  type ExplanationPromptParts,
} from "./agentinstruct-cot.ts";
export { agentInstructRewrite, AGENTINSTRUCT_REWRITES } from "./agentinstruct.ts";
export { vicunaV11Prompt, VICUNA_V11_SYSTEM } from "./vicuna.ts";
export { renderChatTemplate, compileChatTemplate, type ChatTemplateOptions } from "./chat-template.ts";
export { pyStrip, pyRstrip, pyLstrip } from "./whitespace.ts";

export { CompletionHandler, choiceLogprobs, echoLogprobs, generatedTokens } from "./completion-handler.ts";
export {
  responseId,
  unixSeconds,
  type CompletionInput,
  type CompletionOutput,
  type CompletionStages,
  type GenerateSuccess,
} from "./completion-io.ts";
export { completionPrompts, tokenIdProblem, type CompletionPrompt, type TokenLimits } from "./completion-prompts.ts";
export { tokenizerRoutes, TOKENIZER_PATHS, type TokenizeResponse } from "./tokenizer-routes.ts";
export {
  CompletionRequest,
  CompletionRequestInput,
  CompletionRequestFields,
  ChatMessageSchema,
  completionRequestSchema,
  REQUEST_DEFAULTS,
  REQUEST_LIMITS,
} from "./request.ts";
export { CompletionResponse, CompletionChunk, Choice, ChoiceLogprobs, Usage } from "./response.ts";
export { Llama2ChatHandler, VicunaHandler, ChatTemplateHandler, ChatTemplateSection, RawPromptHandler } from "./prompt-format-handlers.ts";
export { openaiRoutes, OPENAI_PATHS } from "./openai-routes.ts";
export {
  parseOpenAICompletion,
  parseOpenAIChat,
  OpenAICompletionFields,
  OpenAIChatFields,
  CHAT_DEFAULT_MAX_TOKENS,
  type OpenAICall,
  type OpenAIPrompt,
} from "./openai-request.ts";
export { openaiErrorBody, asOpenAIFailure, type OpenAIErrorBody } from "./openai-error.ts";
export { SSE_CONTENT_TYPE, SSE_DONE, sseEvent, sseBody } from "./sse.ts";

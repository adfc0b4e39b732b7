export { CompletionHandler, choiceLogprobs, echoLogprobs, type CompletionInput, type CompletionOutput, type GenerateSuccess } from "./handler.ts";
export {
  CompletionRequest, CompletionRequestInput, CompletionRequestFields, ChatMessageSchema,
  completionRequestSchema, REQUEST_DEFAULTS, REQUEST_LIMITS,
} from "./request.ts";
export { CompletionResponse, CompletionChunk, Choice, ChoiceLogprobs, Usage } from "./response.ts";
export { Llama2ChatHandler, VicunaHandler, ChatTemplateHandler, ChatTemplateSection, RawPromptHandler } from "./formats.ts";
export { openaiRoutes, OPENAI_PATHS } from "./openai-routes.ts";
export { parseOpenAICompletion, parseOpenAIChat, OpenAICompletionFields, OpenAIChatFields, CHAT_DEFAULT_MAX_TOKENS, type OpenAICall } from "./openai-request.ts";
export { openaiErrorBody, asOpenAIFailure, type OpenAIErrorBody } from "./openai-error.ts";
export { SSE_CONTENT_TYPE, SSE_DONE, sseEvent, sseBody } from "./sse.ts";

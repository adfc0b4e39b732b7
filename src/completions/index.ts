export { CompletionHandler, choiceLogprobs, echoLogprobs, type CompletionInput, type CompletionOutput, type GenerateSuccess } from "./handler.ts";
export {
  CompletionRequest, CompletionRequestInput, CompletionRequestFields, ChatMessageSchema,
  completionRequestSchema, REQUEST_DEFAULTS, REQUEST_LIMITS,
} from "./request.ts";
export { CompletionResponse, CompletionChunk, Choice, ChoiceLogprobs, Usage } from "./response.ts";
export { Llama2ChatHandler, VicunaHandler, ChatTemplateHandler, ChatTemplateSection, RawPromptHandler } from "./formats.ts";

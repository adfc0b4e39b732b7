/**
 * tsserve's public API for handler authors: `import { ... } from "tsserve"`.
 * (The test kit is `tsserve/testing`; the Node runtime entry is `tsserve/runtime`.)
 */
export { Handler, type AnyHandler, type HandlerClass, type RequestOf, type ConfigOf } from "./handler/handler-class.ts";
export type { HandlerContext, StageContext } from "./handler/context.ts";
export { RequestFailure, isFailure, type Maybe } from "./handler/failure.ts";
export { parseOrFail, describeIssues, issuePath } from "./handler/validate.ts";
export { normalizeRoutePath, type Route, type RouteCall } from "./handler/route.ts";
export { RawBody, isRawBody } from "./handler/raw-body.ts";
export { parseBody } from "./handler/request-body.ts";
export { runStages, type Stage, type StageBase } from "./handler/stages.ts";
export type { ModelClient, GenerateOptions, TokenizeOptions } from "./handler/model.ts";
export type {
  GenerateRequest,
  GenerateOutcome,
  GenerationDelta,
  ModelInfo,
  Sequence,
  TokenLogprobs,
  StructuredOutput,
} from "./protocol/messages.ts";
export * from "./structured/index.ts";
export {
  HandlerSection,
  HandlerSectionFields,
  extendHandlerSection,
  ModelConfig,
  parseModelConfig,
  resolveModelPath,
  Dtype,
  Quantize,
} from "./config/model-config.ts";
export { parseByteSize } from "./config/bytes.ts";
export * from "./completions/index.ts";
export * from "./prompts/index.ts";

/**
 * The shipped prompt formats as CompletionHandlers. The model files in
 * handlers/ are one-line subclasses of these.
 */
import { z } from "zod";
import type { StageContext } from "../handler/context.ts";
import { RequestFailure } from "../handler/failure.ts";
import { extendHandlerSection, type HandlerSection } from "../config/model-config.ts";
import { agentInstructRewrite } from "../prompts/agentinstruct.ts";
import { llama2ChatPrompt, llama2RawPrompt } from "../prompts/llama-2-chat.ts";
import { vicunaV11Prompt } from "../prompts/vicuna.ts";
import { renderChatTemplate } from "../prompts/chat-template.ts";
import { CompletionHandler } from "./completion-handler.ts";
import type { CompletionRequest } from "./request.ts";

/**
 * Llama-2 chat: `messages` in Meta's chat format (as transformers renders
 * the published chat_template); a raw `prompt` through the AgentInstruct
 * rewrite, behind an empty system block (`[INST] <<SYS>>\n\n<</SYS>>\n\n`),
 * as the seed's Llama-2-chat handlers did.
 */
export class Llama2ChatHandler<Cfg extends HandlerSection = HandlerSection> extends CompletionHandler<Cfg> {
  override formatPrompt(request: CompletionRequest, ctx: StageContext<Cfg>): string {
    if (request.messages) {
      const info = ctx.model.info;
      return llama2ChatPrompt(request.messages, { bosToken: info.bos_token ?? "<s>", eosToken: info.eos_token ?? "</s>" });
    }
    return llama2RawPrompt(request.prompt ?? "");
  }
}

/**
 * A base (non-chat) model: the raw `prompt` goes to the model unchanged, as
 * the seed's base Llama-2 handlers sent it; `messages` are refused, since a
 * base model has no chat format.
 */
export class RawPromptHandler<Cfg extends HandlerSection = HandlerSection> extends CompletionHandler<Cfg> {
  override formatPrompt(request: CompletionRequest): string {
    if (request.messages) {
      throw RequestFailure.badRequest("messages: this is a base model with no chat format; send a prompt instead", "messages");
    }
    return request.prompt ?? "";
  }
}

/** Vicuna: `messages` in FastChat's vicuna_v1.1 format; a raw `prompt` through the AgentInstruct rewrite only. */
export class VicunaHandler<Cfg extends HandlerSection = HandlerSection> extends CompletionHandler<Cfg> {
  override formatPrompt(request: CompletionRequest): string {
    if (request.messages) return vicunaV11Prompt(request.messages);
    return agentInstructRewrite(request.prompt ?? "");
  }
}

export const ChatTemplateSection = extendHandlerSection({
  /** A Jinja chat template; when absent, the model's own (tokenizer_config.json's `chat_template`). */
  chat_template: z.string().min(1).optional(),
});
export type ChatTemplateSection = z.output<typeof ChatTemplateSection>;

/**
 * Any model with a Hugging Face chat template: `messages` rendered with the
 * template from the config (`handler.chat_template`) or else the model's own;
 * a raw `prompt` passed through unchanged.
 */
export class ChatTemplateHandler extends CompletionHandler<ChatTemplateSection> {
  override readonly configSchema = ChatTemplateSection;

  override formatPrompt(request: CompletionRequest, ctx: StageContext<ChatTemplateSection>): string {
    if (!request.messages) return request.prompt ?? "";
    const info = ctx.model.info;
    const template = ctx.config.handler.chat_template ?? info.chat_template;
    if (!template) {
      throw RequestFailure.badRequest("messages: this model has no chat template; send a prompt instead", "messages");
    }
    return renderChatTemplate(template, request.messages, {
      bosToken: info.bos_token,
      eosToken: info.eos_token,
      addGenerationPrompt: true,
    });
  }
}

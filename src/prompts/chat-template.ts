/**
 * Any Hugging Face `chat_template` (the Jinja string in a model's
 * tokenizer_config.json), rendered with @huggingface/jinja the way
 * transformers' `apply_chat_template` renders it: trim_blocks and
 * lstrip_blocks on, `bos_token`, `eos_token`, `add_generation_prompt` and
 * `raise_exception` in scope. A template's `raise_exception(...)` becomes a
 * RequestFailure naming `messages`.
 *
 * Known differences from Python's Jinja2 (the hand-written formats such as
 * llama-2-chat.ts have neither): the library's `strip()`/`trim` use
 * JavaScript's notion of whitespace (U+001C..U+001F, U+0085, U+FEFF at the
 * ends of content), and it compares `"" != false` as false, so Llama-2's
 * published template drops an empty system message here.
 */
import { Template } from "@huggingface/jinja";
import { RequestFailure } from "../handler/failure.ts";
import type { ChatMessage } from "./messages.ts";

export interface ChatTemplateOptions {
  bosToken?: string | null;
  eosToken?: string | null;
  /** Append the template's opening of an assistant turn (default true: we are about to generate). */
  addGenerationPrompt?: boolean;
  /** More variables for the template. */
  extra?: Record<string, unknown>;
}

class TemplateRaised extends Error {}

const compiled = new Map<string, Template>();
/** The library predefines `raise_exception` (throwing a bare Error); templates call ours under this name. */
const RAISE = "__tsserve_raise_exception";

/** Rename every `raise_exception` identifier in the parsed template (not in string literals). */
function renameRaise(node: unknown, seen = new Set<unknown>()): void {
  if (node === null || typeof node !== "object" || seen.has(node)) return;
  seen.add(node);
  const record = node as Record<string, unknown>;
  if (record.type === "Identifier" && record.value === "raise_exception") record.value = RAISE;
  for (const child of Object.values(record)) renameRaise(child, seen);
}

/** Parse once per template string; a template that does not parse is a configuration error (thrown as is). */
export function compileChatTemplate(source: string): Template {
  let template = compiled.get(source);
  if (!template) {
    template = new Template(source);
    renameRaise(template.parsed);
    compiled.set(source, template);
  }
  return template;
}

export function renderChatTemplate(source: string, messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
  if (messages.length === 0) throw RequestFailure.badRequest("messages: must contain at least one message", "messages");
  const template = compileChatTemplate(source);
  try {
    return template.render({
      ...options.extra,
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      bos_token: options.bosToken ?? "",
      eos_token: options.eosToken ?? "",
      add_generation_prompt: options.addGenerationPrompt ?? true,
      [RAISE]: (message: unknown) => {
        throw new TemplateRaised(String(message));
      },
    });
  } catch (error) {
    if (error instanceof TemplateRaised) throw RequestFailure.badRequest(`messages: ${error.message}`, "messages");
    throw error;
  }
}

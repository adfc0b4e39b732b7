/**
 * Any Hugging Face `chat_template` (the Jinja string in a model's
 * tokenizer_config.json), rendered with @huggingface/jinja the way
 * transformers' `apply_chat_template` renders it: trim_blocks and
 * lstrip_blocks on, `bos_token`, `eos_token`, `add_generation_prompt` and
 * `raise_exception` in scope. A template's `raise_exception(...)` becomes a
 * RequestFailure naming `messages`.
 *
 * `==` and `!=` compare as Python does (the library uses JavaScript's loose
 * equality, where `"" == false`: Llama-2's published template would drop an
 * empty system message). A known difference from Python's Jinja2 remains (the
 * hand-written formats such as llama-2-chat.ts do not have it): the library's
 * `strip()`/`trim` use JavaScript's notion of whitespace (U+001C..U+001F,
 * U+0085, U+FEFF at the ends of content).
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
/** `a == b` and `a != b` become calls of this function, which compares as Python does. */
const EQUALS = "__tsserve_equals";

/** A runtime value's plain content (function arguments arrive as `.value`; array items and map values stay wrapped). */
function unwrap(value: unknown): unknown {
  if (
    value !== null &&
    typeof value === "object" &&
    !(value instanceof Map) &&
    !Array.isArray(value) &&
    "value" in value &&
    "type" in value
  ) {
    return (value as { value: unknown }).value;
  }
  return value;
}

/** Python's `==` on Jinja values: booleans equal only 0 and 1, a string never equals a non-string, None only None. */
export function pythonEquals(left: unknown, right: unknown): boolean {
  const a = unwrap(left);
  const b = unwrap(right);
  if (a === undefined || b === undefined || a === null || b === null) return a === b;
  const numeric = (v: unknown) => typeof v === "number" || typeof v === "boolean";
  if (numeric(a) && numeric(b)) return Number(a) === Number(b);
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((item, i) => pythonEquals(item, b[i]));
  if (a instanceof Map && b instanceof Map) {
    return a.size === b.size && [...a].every(([key, value]) => b.has(key) && pythonEquals(value, b.get(key)));
  }
  return a === b;
}

type Node = Record<string, unknown>;

/**
 * Fits the parsed template to Python's semantics: renames `raise_exception`
 * identifiers (not string literals) and turns `==`/`!=` into calls of EQUALS.
 */
function adaptTemplate(node: unknown, seen = new Set<unknown>()): void {
  if (node === null || typeof node !== "object" || seen.has(node)) return;
  seen.add(node);
  const record = node as Node;
  for (const child of Object.values(record)) adaptTemplate(child, seen);
  if (record.type === "Identifier" && record.value === "raise_exception") record.value = RAISE;
  const operator = (record.operator as Node | undefined)?.value;
  if (record.type === "BinaryExpression" && (operator === "==" || operator === "!=")) {
    const call: Node = { type: "CallExpression", callee: { type: "Identifier", value: EQUALS }, args: [record.left, record.right] };
    for (const key of Object.keys(record)) delete record[key];
    Object.assign(
      record,
      operator === "==" ? call : { type: "UnaryExpression", operator: { type: "UnaryOperator", value: "not" }, argument: call },
    );
  }
}

/** Parse once per template string; a template that does not parse is a configuration error (thrown as is). */
export function compileChatTemplate(source: string): Template {
  let template = compiled.get(source);
  if (!template) {
    template = new Template(source);
    adaptTemplate(template.parsed);
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
      [EQUALS]: pythonEquals,
      [RAISE]: (message: unknown) => {
        throw new TemplateRaised(String(message));
      },
    });
  } catch (error) {
    if (error instanceof TemplateRaised) throw RequestFailure.badRequest(`messages: ${error.message}`, "messages");
    throw error;
  }
}

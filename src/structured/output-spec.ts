/**
 * What a generation should produce, as the handler states it: a zod schema,
 * a JSON Schema, any JSON object, a regular expression or a list of choices.
 * `structuredOutput` turns it into the protocol's `structured` (what the
 * engine constrains decoding to) and a parser that gives the typed value back
 * from the text. With a zod schema the type is the schema's own output type,
 * and the value is what `schema.parse` returns.
 */
import { z } from "zod";
import type { StructuredOutput } from "../protocol/messages.ts";
import { unsupportedSchemaFeatures } from "./schema-support.ts";

export type JsonSchema = Record<string, unknown>;

export type OutputShape =
  | z.ZodType
  | { jsonSchema: JsonSchema }
  | { jsonObject: true }
  | { regex: string | RegExp }
  | { choice: readonly string[] };

export type Parsed<T> = { success: true; value: T } | { success: false; error: string };

export interface StructuredSpec<T> {
  /** What the engine constrains the text to. */
  readonly structured: StructuredOutput;
  /** The text as the typed value, or why it is not one (cut by max_tokens, a stop sequence, ...). */
  parse(text: string): Parsed<T>;
}

/** A shape tsserve cannot constrain to: the message names what is unsupported (a 400 on a request path). */
export class StructuredOutputError extends Error {
  override readonly name = "StructuredOutputError";
}

export function structuredOutput<S extends z.ZodType>(shape: S): StructuredSpec<z.output<S>>;
export function structuredOutput(shape: { jsonSchema: JsonSchema }): StructuredSpec<unknown>;
export function structuredOutput(shape: { jsonObject: true }): StructuredSpec<Record<string, unknown>>;
export function structuredOutput(shape: { regex: string | RegExp }): StructuredSpec<string>;
export function structuredOutput<const C extends readonly string[]>(shape: { choice: C }): StructuredSpec<C[number]>;
export function structuredOutput(shape: OutputShape): StructuredSpec<unknown>;
export function structuredOutput(shape: OutputShape): StructuredSpec<unknown> {
  if (shape instanceof z.ZodType) return zodSpec(shape);
  if ("jsonSchema" in shape) return jsonSchemaSpec(shape.jsonSchema);
  if ("jsonObject" in shape) return jsonObjectSpec();
  if ("regex" in shape) return regexSpec(shape.regex);
  if ("choice" in shape) return choiceSpec(shape.choice);
  throw new StructuredOutputError("structured output: give a zod schema, {jsonSchema}, {jsonObject: true}, {regex} or {choice}");
}

/** A JSON Schema, checked for what the engines cannot enforce. */
export function checkedJsonSchema(schema: unknown, what = "json_schema"): JsonSchema {
  const problems = unsupportedSchemaFeatures(schema);
  if (problems.length > 0) throw new StructuredOutputError(`${what}: ${problems.join("; ")}`);
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) {
    throw new StructuredOutputError(`${what}: must be a JSON Schema object`);
  }
  return schema as JsonSchema;
}

/** zod's JSON Schema of what the model must write (the schema's input), formats without zod's look-alike patterns. */
export function zodJsonSchema(schema: z.ZodType): JsonSchema {
  let json: JsonSchema;
  try {
    json = z.toJSONSchema(schema, { io: "input", unrepresentable: "throw" }) as JsonSchema;
  } catch (error) {
    throw new StructuredOutputError(`zod schema: ${(error as Error).message}`);
  }
  return checkedJsonSchema(dropPatternsBesideFormats(json), "zod schema");
}

/** zod writes a `pattern` next to each string format (z.email()); the engines enforce the format itself. */
function dropPatternsBesideFormats(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(dropPatternsBesideFormats);
  if (typeof node !== "object" || node === null) return node;
  const entries = Object.entries(node).filter(([key]) => !(key === "pattern" && "format" in node));
  return Object.fromEntries(entries.map(([key, value]) => [key, dropPatternsBesideFormats(value)]));
}

function parseJson(text: string): Parsed<unknown> {
  try {
    return { success: true, value: JSON.parse(text) };
  } catch (error) {
    return { success: false, error: `not JSON: ${(error as Error).message}` };
  }
}

function zodSpec<S extends z.ZodType>(schema: S): StructuredSpec<z.output<S>> {
  return {
    structured: { json_schema: zodJsonSchema(schema) },
    parse(text) {
      const json = parseJson(text);
      if (!json.success) return json;
      const result = schema.safeParse(json.value);
      return result.success ? { success: true, value: result.data } : { success: false, error: z.prettifyError(result.error) };
    },
  };
}

function jsonSchemaSpec(schema: JsonSchema): StructuredSpec<unknown> {
  return { structured: { json_schema: checkedJsonSchema(schema) }, parse: parseJson };
}

function jsonObjectSpec(): StructuredSpec<Record<string, unknown>> {
  return {
    structured: { json_object: true },
    parse(text) {
      const json = parseJson(text);
      if (!json.success) return json;
      const isObject = typeof json.value === "object" && json.value !== null && !Array.isArray(json.value);
      return isObject ? { success: true, value: json.value as Record<string, unknown> } : { success: false, error: "not a JSON object" };
    },
  };
}

function regexSpec(regex: string | RegExp): StructuredSpec<string> {
  const source = typeof regex === "string" ? regex : regex.source;
  if (source === "") throw new StructuredOutputError("regex: must not be empty");
  let whole: RegExp;
  try {
    whole = new RegExp(`^(?:${source})$`, "u");
  } catch (error) {
    throw new StructuredOutputError(`regex: ${(error as Error).message}`);
  }
  return {
    structured: { regex: source },
    parse: (text) => (whole.test(text) ? { success: true, value: text } : { success: false, error: `does not match /${source}/` }),
  };
}

function choiceSpec<C extends readonly string[]>(choices: C): StructuredSpec<C[number]> {
  if (choices.length === 0 || choices.some((c) => typeof c !== "string" || c === "")) {
    throw new StructuredOutputError("choice: must be a list of one or more non-empty strings");
  }
  return {
    structured: { choice: [...choices] },
    parse: (text) =>
      choices.includes(text)
        ? { success: true, value: text as C[number] }
        : { success: false, error: `not one of ${JSON.stringify(choices)}` },
  };
}

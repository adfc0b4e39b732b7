/**
 * Structured output on the OpenAI routes, as OpenAI and vLLM take it:
 *
 * - `response_format`: `{"type": "text"}` (free text), `{"type": "json_object"}`,
 *   `{"type": "json_schema", "json_schema": {"name", "schema", "strict"?}}`;
 * - vLLM's extras: `structured_outputs: {json | regex | choice | json_object}`,
 *   and the older `guided_json`, `guided_regex`, `guided_choice`.
 *
 * At most one of them may constrain a request. A schema the engines cannot
 * enforce is a 400 naming what is unsupported and where.
 */
import { RequestFailure } from "../handler/failure.ts";
import type { StructuredOutput } from "../protocol/messages.ts";
import { checkedJsonSchema, StructuredOutputError } from "../structured/output-spec.ts";

type Body = Record<string, unknown>;

/** The fields this module reads (the request parsers leave them out of the handler's request). */
export const STRUCTURED_FIELDS = ["response_format", "structured_outputs", "guided_json", "guided_regex", "guided_choice"] as const;

const isObject = (v: unknown): v is Body => typeof v === "object" && v !== null && !Array.isArray(v);

/** What the call constrains its text to: undefined for free text, a 400 for a bad or unsupported one. */
export function openaiStructured(body: Body): StructuredOutput | undefined | RequestFailure {
  const given = STRUCTURED_FIELDS.filter((field) => body[field] != null && !(field === "response_format" && isText(body[field])));
  if (given.length === 0) return undefined;
  if (given.length > 1) {
    return RequestFailure.badRequest(`${given[1]}: give one of ${given.join(", ")}, not several`, given[1]);
  }
  const field = given[0]!;
  try {
    return fromField(field, body[field]);
  } catch (error) {
    if (error instanceof StructuredOutputError) return RequestFailure.badRequest(error.message, field);
    throw error;
  }
}

const isText = (format: unknown) => isObject(format) && format.type === "text";

function fromField(field: (typeof STRUCTURED_FIELDS)[number], value: unknown): StructuredOutput {
  switch (field) {
    case "response_format":
      return fromResponseFormat(value);
    case "structured_outputs":
      return fromVllmStructuredOutputs(value);
    case "guided_json":
      return { json_schema: jsonSchemaValue(value, "guided_json") };
    case "guided_regex":
      return { regex: regexValue(value, "guided_regex") };
    case "guided_choice":
      return { choice: choiceValue(value, "guided_choice") };
  }
}

function fromResponseFormat(format: unknown): StructuredOutput {
  if (!isObject(format)) throw new StructuredOutputError('response_format: must be an object with a "type"');
  if (format.type === "json_object") return { json_object: true };
  if (format.type === "json_schema") {
    const spec = format.json_schema;
    if (!isObject(spec) || !isObject(spec.schema)) {
      throw new StructuredOutputError('response_format.json_schema: must be {"name": ..., "schema": {a JSON Schema}}');
    }
    return { json_schema: checkedJsonSchema(spec.schema, "response_format.json_schema.schema") };
  }
  throw new StructuredOutputError(
    `response_format.type: must be "text", "json_object" or "json_schema", got ${JSON.stringify(format.type)}`,
  );
}

function fromVllmStructuredOutputs(value: unknown): StructuredOutput {
  if (!isObject(value)) throw new StructuredOutputError("structured_outputs: must be an object");
  const kinds = ["json", "regex", "choice", "json_object"].filter((kind) => value[kind] != null && value[kind] !== false);
  const unsupported = ["grammar", "structural_tag"].filter((kind) => value[kind] != null);
  if (unsupported.length > 0) {
    throw new StructuredOutputError(`structured_outputs.${unsupported[0]}: is not supported (only json, regex, choice, json_object)`);
  }
  if (kinds.length !== 1) throw new StructuredOutputError("structured_outputs: give exactly one of json, regex, choice, json_object");
  const kind = kinds[0]!;
  if (kind === "json") return { json_schema: jsonSchemaValue(value.json, "structured_outputs.json") };
  if (kind === "regex") return { regex: regexValue(value.regex, "structured_outputs.regex") };
  if (kind === "choice") return { choice: choiceValue(value.choice, "structured_outputs.choice") };
  return { json_object: true };
}

/** A JSON Schema given as an object or as its JSON text (vLLM takes both). */
function jsonSchemaValue(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "string") return checkedJsonSchema(value, what);
  try {
    return checkedJsonSchema(JSON.parse(value), what);
  } catch (error) {
    if (error instanceof StructuredOutputError) throw error;
    throw new StructuredOutputError(`${what}: not a JSON Schema (${(error as Error).message})`);
  }
}

function regexValue(value: unknown, what: string): string {
  if (typeof value !== "string" || value === "") throw new StructuredOutputError(`${what}: must be a non-empty string`);
  return value;
}

function choiceValue(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.some((c) => typeof c !== "string" || c === "")) {
    throw new StructuredOutputError(`${what}: must be a list of one or more non-empty strings`);
  }
  return value as string[];
}

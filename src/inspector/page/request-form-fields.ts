/**
 * The form's fields, from the handler's request schema (JSON Schema): the
 * fields a request needs and the usual ones, prefilled, each edited as text
 * and sent as JSON where it reads as JSON (so a bad value reaches the server,
 * which names the field).
 */

export interface FormField {
  name: string;
  /** The value as edited: JSON text, or a plain string for a string field. */
  text: string;
  type: string;
}

type PropertySchema = { type?: string | string[]; anyOf?: PropertySchema[]; default?: unknown };
type JsonSchema = { properties?: Record<string, PropertySchema>; required?: string[] };

export const CHAT_ROUTE = "v1/chat/completions";
const USUAL = ["prompt", "max_tokens", "temperature", "stream"];
const SAMPLES: Record<string, unknown> = {
  prompt: "Tell me about tokens.",
  messages: [{ role: "user", content: "Tell me about tokens." }],
  max_tokens: 16,
  temperature: 0,
  stream: false,
};

/** A property's type, nullability aside (zod's optional-nullable fields are `anyOf: [T, null]`). */
function typeIn(property: PropertySchema | undefined): string | undefined {
  if (!property) return undefined;
  const types = [property.type ?? [], ...(property.anyOf ?? []).map(typeIn)].flat();
  return types.find((type): type is string => type !== undefined && type !== "null");
}

function typeOf(schema: JsonSchema, name: string): string {
  return name === "messages" ? "array" : (typeIn(schema.properties?.[name]) ?? "string");
}

function asText(value: unknown, type: string): string {
  return type === "string" && typeof value === "string" ? value : JSON.stringify(value);
}

/** The prefilled fields of `route` (chat: messages instead of prompt). */
export function prefilledFields(schema: JsonSchema | null, route: string): FormField[] {
  const known = schema ?? {};
  const names = [...new Set([...(known.required ?? []), ...USUAL])].filter(
    (name) => !known.properties || name in known.properties || name in SAMPLES,
  );
  const wanted = route === CHAT_ROUTE ? ["messages", ...names.filter((name) => name !== "prompt")] : names;
  return wanted.map((name) => {
    const type = typeOf(known, name);
    return { name, type, text: asText(SAMPLES[name] ?? known.properties?.[name]?.default ?? "", type) };
  });
}

/** The other fields the schema knows, to add. */
export function otherFields(schema: JsonSchema | null, fields: readonly FormField[]): string[] {
  const shown = new Set(fields.map((field) => field.name));
  return Object.keys(schema?.properties ?? {}).filter((name) => !shown.has(name));
}

export function newField(schema: JsonSchema | null, name: string): FormField {
  const type = typeOf(schema ?? {}, name);
  return { name, type, text: asText(schema?.properties?.[name]?.default ?? (type === "string" ? "" : null), type) };
}

function fieldValue(field: FormField): unknown {
  if (field.type === "string") return field.text;
  try {
    return JSON.parse(field.text);
  } catch {
    return field.text;
  }
}

/** The request body the fields make, as the text sent. */
export function bodyOf(fields: readonly FormField[]): string {
  return JSON.stringify(Object.fromEntries(fields.map((field) => [field.name, fieldValue(field)])));
}

/**
 * Which JSON Schemas tsserve can constrain a generation to. Both engines
 * compile a schema with xgrammar, which enforces most of JSON Schema but
 * silently ignores a few keywords (a schema with `uniqueItems` would be
 * "satisfied" by `[1, 1]`). Rather than answer with text the schema refuses,
 * a schema that uses one of them is refused up front, naming the keyword and
 * where it is: `"uniqueItems" at /properties/tags is not supported`.
 */

/** Keywords that only describe (kept, never enforced). */
const ANNOTATIONS = new Set([
  "$schema",
  "$id",
  "$comment",
  "$anchor",
  "title",
  "description",
  "default",
  "examples",
  "deprecated",
  "readOnly",
  "writeOnly",
  "contentMediaType",
  "contentEncoding",
  "strict",
]);

/** Keywords the grammar enforces. */
const ENFORCED = new Set([
  "type",
  "enum",
  "const",
  "anyOf",
  "oneOf",
  "$ref",
  "$defs",
  "definitions",
  "properties",
  "required",
  "additionalProperties",
  "patternProperties",
  "propertyNames",
  "unevaluatedProperties",
  "items",
  "prefixItems",
  "minItems",
  "maxItems",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "multipleOf",
  "minLength",
  "maxLength",
  "pattern",
  "format",
]);

/** Keywords known to be left unenforced, and why a client should care. */
const UNSUPPORTED: Record<string, string> = {
  allOf: "combine the schemas into one",
  not: "",
  if: "",
  // biome-ignore lint/suspicious/noThenProperty: a JSON Schema keyword in a table of keywords, never awaited
  then: "",
  else: "",
  uniqueItems: "",
  contains: "",
  minContains: "",
  maxContains: "",
  minProperties: "",
  maxProperties: "",
  dependentRequired: "",
  dependentSchemas: "",
  dependencies: "",
  unevaluatedItems: "",
};

export const SUPPORTED_FORMATS = ["date", "time", "date-time", "duration", "email", "uuid", "uri", "ipv4", "ipv6", "hostname"] as const;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** A JSON Pointer segment. */
const segment = (key: string | number) => String(key).replaceAll("~", "~0").replaceAll("/", "~1");

/** Keywords whose value is one subschema, a map of them, or a list of them. */
const ONE_SCHEMA = ["additionalProperties", "propertyNames", "unevaluatedProperties", "items"];
const SCHEMA_MAP = ["properties", "patternProperties", "$defs", "definitions"];
const SCHEMA_LIST = ["anyOf", "oneOf", "prefixItems"];

/**
 * What in `schema` tsserve cannot enforce, one message per problem (empty:
 * supported). `at` is a JSON Pointer into the schema.
 */
export function unsupportedSchemaFeatures(schema: unknown, at = ""): string[] {
  if (typeof schema === "boolean") return [];
  if (!isObject(schema)) return [`${where(at)} must be a JSON Schema object`];
  const problems: string[] = [];
  for (const [keyword, value] of Object.entries(schema)) {
    problems.push(...keywordProblems(schema, keyword, value, at));
  }
  for (const keyword of ONE_SCHEMA) {
    if (keyword in schema) problems.push(...unsupportedSchemaFeatures(schema[keyword], `${at}/${keyword}`));
  }
  for (const keyword of SCHEMA_MAP) {
    const map = schema[keyword];
    if (isObject(map))
      for (const [name, sub] of Object.entries(map)) problems.push(...unsupportedSchemaFeatures(sub, `${at}/${keyword}/${segment(name)}`));
  }
  for (const keyword of SCHEMA_LIST) {
    const list = schema[keyword];
    if (Array.isArray(list)) {
      list.forEach((sub, i) => {
        problems.push(...unsupportedSchemaFeatures(sub, `${at}/${keyword}/${i}`));
      });
    }
  }
  return problems;
}

const where = (at: string) => (at === "" ? "the schema" : `the schema at ${at}`);

function keywordProblems(schema: Record<string, unknown>, keyword: string, value: unknown, at: string): string[] {
  const place = at === "" ? "" : ` at ${at}`;
  if (keyword in UNSUPPORTED) {
    if (keyword === "uniqueItems" && value === false) return [];
    const hint = UNSUPPORTED[keyword] ? ` (${UNSUPPORTED[keyword]})` : "";
    return [`"${keyword}"${place} is not supported${hint}`];
  }
  if (ANNOTATIONS.has(keyword) || keyword.startsWith("x-")) return [];
  if (!ENFORCED.has(keyword)) return [`"${keyword}"${place} is not a JSON Schema keyword tsserve knows`];
  if (keyword === "$ref" && (typeof value !== "string" || !value.startsWith("#"))) {
    return [`"$ref"${place} must point into the schema itself ("#/$defs/..."), got ${JSON.stringify(value)}`];
  }
  if (keyword === "format" && !(SUPPORTED_FORMATS as readonly unknown[]).includes(value)) {
    return [`"format": ${JSON.stringify(value)}${place} is not supported (supported: ${SUPPORTED_FORMATS.join(", ")})`];
  }
  if (keyword === "multipleOf" && schema.type !== "integer") return [`"multipleOf"${place} is supported on integers only`];
  if ((keyword === "pattern" || keyword === "format") && ("minLength" in schema || "maxLength" in schema)) {
    return [`"${keyword}"${place} cannot be combined with minLength/maxLength (put the length in the pattern)`];
  }
  return [];
}

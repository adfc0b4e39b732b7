export {
  structuredOutput,
  checkedJsonSchema,
  zodJsonSchema,
  StructuredOutputError,
  type StructuredSpec,
  type OutputShape,
  type Parsed,
  type JsonSchema,
} from "./output-spec.ts";
export {
  generateStructured,
  parseOutcome,
  withStructure,
  type StructuredOutcome,
  type StructuredSequence,
  type ValueOf,
} from "./generate.ts";
export { unsupportedSchemaFeatures, SUPPORTED_FORMATS } from "./schema-support.ts";

/**
 * Structured generation for handlers: `generateStructured` sends each request
 * with the shape's `structured` and gives every sequence back with its text
 * and its parsed, typed value.
 *
 *   const Answer = z.object({ answer: z.enum(["A", "B", "C", "D"]), explanation: z.string() });
 *   const [result] = await generateStructured(ctx.model, [request], Answer);
 *   if (result.ok && result.sequences[0].parsed.success) result.sequences[0].parsed.value.answer; // "A" | "B" | "C" | "D"
 *
 * A sequence that ended by itself (finish_reason "stop") satisfies the shape
 * (unless a stop sequence cut it); one cut by max_tokens ("length") mostly
 * holds a prefix, and its `parsed` says so.
 */
import type { z } from "zod";
import type { GenerateOptions, ModelClient } from "../handler/model.ts";
import type { GenerateOutcome, GenerateRequest, Sequence } from "../protocol/messages.ts";
import { structuredOutput, type JsonSchema, type OutputShape, type Parsed, type StructuredSpec } from "./output-spec.ts";

export interface StructuredSequence<T> {
  text: string;
  finish_reason: Sequence["finish_reason"];
  parsed: Parsed<T>;
  /** The sequence as the engine reported it (logprobs included). */
  sequence: Sequence;
}

export type StructuredOutcome<T> =
  | Extract<GenerateOutcome, { ok: false }>
  | { ok: true; outcome: Extract<GenerateOutcome, { ok: true }>; sequences: StructuredSequence<T>[] };

/** The value a shape parses to. */
export type ValueOf<S> =
  S extends StructuredSpec<infer T>
    ? T
    : S extends z.ZodType
      ? z.output<S>
      : S extends { choice: infer C extends readonly string[] }
        ? C[number]
        : S extends { regex: string | RegExp }
          ? string
          : S extends { jsonObject: true }
            ? Record<string, unknown>
            : S extends { jsonSchema: JsonSchema }
              ? unknown
              : never;

/** `request` constrained to `spec`. */
export function withStructure(request: GenerateRequest, spec: StructuredSpec<unknown>): GenerateRequest {
  return { ...request, structured: spec.structured };
}

/** Each sequence of a successful outcome with its parsed value. */
export function parseOutcome<T>(outcome: GenerateOutcome, spec: StructuredSpec<T>): StructuredOutcome<T> {
  if (!outcome.ok) return outcome;
  return {
    ok: true,
    outcome,
    sequences: outcome.sequences.map((sequence) => ({
      text: sequence.text,
      finish_reason: sequence.finish_reason,
      parsed: parseSequence(sequence, spec),
      sequence,
    })),
  };
}

/**
 * One batched generate call with every request constrained to `shape` (a zod
 * schema, `{jsonSchema}`, `{jsonObject: true}`, `{regex}`, `{choice}`, or a
 * spec from `structuredOutput`). Throws StructuredOutputError for a shape the
 * engines cannot enforce.
 */
export async function generateStructured<S extends OutputShape | StructuredSpec<unknown>>(
  model: ModelClient,
  requests: GenerateRequest[],
  shape: S,
  options?: GenerateOptions,
): Promise<StructuredOutcome<ValueOf<S>>[]> {
  const spec = (isSpec(shape) ? shape : structuredOutput(shape as OutputShape)) as StructuredSpec<ValueOf<S>>;
  const outcomes = await model.generate(
    requests.map((request) => withStructure(request, spec)),
    options,
  );
  return outcomes.map((outcome) => parseOutcome(outcome, spec));
}

/** A text cut by max_tokens usually is a prefix; its error says so. */
function parseSequence<T>(sequence: Sequence, spec: StructuredSpec<T>): Parsed<T> {
  const parsed = spec.parse(sequence.text);
  if (parsed.success || sequence.finish_reason !== "length") return parsed;
  return { success: false, error: `cut by max_tokens before the output was complete (${parsed.error})` };
}

function isSpec(shape: unknown): shape is StructuredSpec<unknown> {
  return typeof shape === "object" && shape !== null && "structured" in shape && "parse" in shape;
}

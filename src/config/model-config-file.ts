/**
 * Reading a model-config.yaml and checking it against a handler's config
 * schema: what `tsserve archive` does before it packs anything, and what
 * `tsserve dev` does again on every save.
 */
import fsp from "node:fs/promises";
import path from "node:path";
import YAML from "yaml";
import type { z } from "zod";
import { ArchiveInputError } from "./input-error.ts";
import { parseModelConfig } from "./model-config.ts";
import { unknownConfigKeys, type UnknownKey } from "./unknown-keys.ts";

/** Formats zod issues as `handler.model_path: Invalid input: expected string` lines. */
function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues.map((i) => `  ${i.path.length ? i.path.map(String).join(".") : "(root)"}: ${i.message}`).join("\n");
}

function formatUnknownKeys(unknown: readonly UnknownKey[]): string {
  return unknown.map((u) => `  ${u.message}`).join("\n");
}

/** A model-config.yaml as read: its top-level mapping and its YAML document (comments and layout kept). */
export interface ModelConfigFile {
  raw: Record<string, unknown>;
  doc: YAML.Document;
}

/** Reads model-config.yaml: its YAML document and its top-level mapping, which must have a `handler:` section. */
export async function readModelConfig(configFile: string): Promise<ModelConfigFile> {
  const text = await fsp.readFile(configFile, "utf8");
  const doc = YAML.parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ArchiveInputError(`${configFile} is not valid YAML:\n${doc.errors.map((e) => `  ${e.message}`).join("\n")}`);
  }
  const raw: unknown = doc.toJS();
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new ArchiveInputError(`${configFile} must be a YAML mapping`);
  if (!("handler" in raw))
    throw new ArchiveInputError(`${configFile}: missing the "handler:" section (model_path and the handler's settings)`);
  return { raw: raw as Record<string, unknown>, doc };
}

/** Checks the parsed config against the handler's schema; returns the config as the handler will see it. */
export function validateModelConfig(
  raw: Record<string, unknown>,
  schema: z.ZodType<unknown>,
  configFile: string,
  handler: string,
): Record<string, unknown> {
  const parsed = parseModelConfig(raw, schema);
  if (!parsed.success) {
    const unknown = unknownConfigKeys(raw, schema, path.basename(handler));
    const hints = unknown.length > 0 ? `\n${formatUnknownKeys(unknown)}` : "";
    throw new ArchiveInputError(
      `${configFile} does not match ${path.basename(handler)}'s config schema:\n${formatIssues(parsed.error.issues)}${hints}`,
    );
  }
  return parsed.data as Record<string, unknown>;
}

/**
 * Keys of the config that nothing reads: warnings, or with `strict` an
 * ArchiveInputError naming them all.
 */
export function checkUnknownKeys(
  raw: Record<string, unknown>,
  schema: z.ZodType<unknown>,
  configFile: string,
  handler: string,
  strict: boolean,
): string[] {
  const unknown = unknownConfigKeys(raw, schema, path.basename(handler));
  if (unknown.length === 0) return [];
  if (strict) throw new ArchiveInputError(`${configFile} has keys that nothing reads (--strict):\n${formatUnknownKeys(unknown)}`);
  return unknown.map((u) => `${configFile}: ${u.message}`);
}

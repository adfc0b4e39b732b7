import type { z } from "zod";
import { RequestFailure } from "./failure.ts";

/** Dotted path of a zod issue: `messages.1.role`; the root is `body`. */
export function issuePath(path: readonly PropertyKey[]): string {
  return path.length === 0 ? "body" : path.map(String).join(".");
}

/** `field: message` for the first issue, the form every refusal takes. */
export function describeIssues(error: z.ZodError): { field: string; message: string } {
  const issue = error.issues[0]!;
  const field = issuePath(issue.path);
  return { field, message: `${field}: ${issue.message}` };
}

export function parseOrFail<T>(schema: z.ZodType<T>, value: unknown): T | RequestFailure {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const { field, message } = describeIssues(parsed.error);
  return RequestFailure.badRequest(message, field);
}

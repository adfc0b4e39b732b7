/** What `npm run demo` takes and how it reports a request (scripts/demo.ts). */
import type { ParseArgsConfig } from "node:util";

/** `npm run demo -- [--keep] [--verbose] [--json] [--port-base P]`. */
export const DEMO_OPTIONS = {
  keep: { type: "boolean", default: false },
  verbose: { type: "boolean", short: "v", default: false },
  json: { type: "boolean", default: false },
  "port-base": { type: "string" },
} as const satisfies NonNullable<ParseArgsConfig["options"]>;

interface Completion {
  choices?: { text?: string; finish_reason?: string | null }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number; total_tokens?: number };
  raw_compute_time?: number;
}

/**
 * What a person reads of one request: the request in one line, what the
 * model said, its token counts and its time (the HTTP round trip, and the
 * model's own compute time as the response reports it).
 */
export function describeAnswer(model: string, label: string, request: unknown, status: number, body: string, seconds: number): string {
  const lines = [`== ${model}: ${label}`, `   ${JSON.stringify(request)}`];
  let answer: Completion | undefined;
  try {
    answer = JSON.parse(body) as Completion;
  } catch {
    answer = undefined;
  }
  const choice = answer?.choices?.[0];
  if (status !== 200 || choice === undefined) return [...lines, `== ${model} answered HTTP ${status}: ${body.trim()}`].join("\n");
  const text = (choice.text ?? "").replace(/\n/g, "\n   ");
  const usage = answer!.usage;
  const tokens = usage
    ? `${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion = ${usage.total_tokens} tokens`
    : "no usage";
  const compute = typeof answer!.raw_compute_time === "number" ? `, model ${answer!.raw_compute_time.toFixed(2)} s` : "";
  lines.push(`== ${model} says: ${text}`, `   ${tokens}, finish_reason ${choice.finish_reason}, ${seconds.toFixed(2)} s${compute}`);
  return lines.join("\n");
}

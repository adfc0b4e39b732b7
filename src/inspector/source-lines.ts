/**
 * The source lines around an error's place (`handlers/my.ts:14:22`), for the
 * page to show under the error. Only the handler's own sources (its bundle's
 * inputs outside node_modules) are ever read.
 */
import fsp from "node:fs/promises";
import path from "node:path";

export const CONTEXT_LINES = 4;

export interface SourceLines {
  file: string;
  line: number;
  lines: { number: number; text: string }[];
}

/** The source a location names: the one input whose path ends with the location's file. */
function sourceOf(file: string, sources: readonly string[]): string | undefined {
  const wanted = path.normalize(file);
  const matches = sources.filter((source) => source === wanted || source.endsWith(`${path.sep}${wanted}`));
  return matches.length === 1 ? matches[0] : undefined;
}

export async function sourceLines(location: string, sources: readonly string[]): Promise<SourceLines | undefined> {
  const match = /^(.+?):(\d+)(?::\d+)?$/.exec(location);
  if (!match) return undefined;
  const source = sourceOf(match[1]!, sources);
  if (!source) return undefined;
  const line = Number(match[2]);
  const all = (await fsp.readFile(source, "utf8")).split("\n");
  const first = Math.max(1, line - CONTEXT_LINES);
  const last = Math.min(all.length, line + CONTEXT_LINES);
  const lines = all.slice(first - 1, last).map((text, k) => ({ number: first + k, text }));
  return { file: match[1]!, line, lines };
}

// The zod side of bench/structured_bench.py: the nested schema the bench asks
// for, as the handler API sends it, and the check of the engines' texts with
// zod itself.
//
//   npx tsx bench/structured-zod.ts schema            -> the JSON Schema the engines constrain to
//   npx tsx bench/structured-zod.ts validate FILE     -> per run in FILE ({run: [texts]}), how many parse and validate
import { readFileSync } from "node:fs";
import { z } from "zod";
import { structuredOutput } from "../src/structured/index.ts";

export const BookReview = z.object({
  title: z.string().min(1).max(60),
  genre: z.enum(["fiction", "science", "history", "poetry", "biography"]),
  rating: z.int().min(1).max(5),
  tags: z.array(z.string().min(1).max(20)).min(1).max(3),
  author: z.object({ name: z.string().min(1).max(40), born: z.int().min(1800).max(2010) }),
});

const spec = structuredOutput(BookReview);

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** The JSON object in a free text: the whole text, else from its first "{" to its last "}". */
function jsonIn(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const start = text.indexOf("{");
    const end = text.lastIndexOf("}");
    if (start < 0 || end <= start) return undefined;
    try {
      return JSON.parse(text.slice(start, end + 1));
    } catch {
      return undefined;
    }
  }
}

function validate(texts: string[]) {
  const strict = texts.filter((text) => spec.parse(text).success).length;
  const embedded = texts.map(jsonIn);
  return {
    requests: texts.length,
    parse_as_is: texts.filter(isJson).length,
    valid_as_is: strict,
    parse_json_found_in_text: embedded.filter((value) => value !== undefined).length,
    valid_json_found_in_text: embedded.filter((value) => BookReview.safeParse(value).success).length,
  };
}

const [command, file] = process.argv.slice(2);
if (command === "schema") {
  process.stdout.write(JSON.stringify((spec.structured as { json_schema: unknown }).json_schema));
} else if (command === "validate" && file) {
  const runs = JSON.parse(readFileSync(file, "utf8")) as Record<string, string[]>;
  process.stdout.write(JSON.stringify(Object.fromEntries(Object.entries(runs).map(([run, texts]) => [run, validate(texts)]))));
} else {
  process.stderr.write("usage: structured-zod.ts schema | validate FILE\n");
  process.exit(2);
}

// Reading the docs as a test sees them: fenced blocks, inline code spans with
// the section they sit in, links, headings, and shell command lines split
// into words.
import fs from "node:fs";
import path from "node:path";

export const ROOT = path.resolve(import.meta.dirname, "../../..");

/** README.md and every page under docs/, relative to the repository root. */
export function docFiles(): string[] {
  const docs = fs
    .readdirSync(path.join(ROOT, "docs"))
    .filter((f) => f.endsWith(".md"))
    .sort()
    .map((f) => `docs/${f}`);
  return ["README.md", ...docs];
}

export interface FencedBlock {
  file: string;
  line: number;
  lang: string;
  text: string;
}

export interface CodeSpan {
  file: string;
  line: number;
  code: string;
  /** The text of the section heading it sits under. */
  heading: string;
  /** The spans before it in the same paragraph (a blank line ends one). */
  paragraph: string[];
}

export interface MarkdownParts {
  blocks: FencedBlock[];
  spans: CodeSpan[];
  headings: string[];
  links: { line: number; target: string }[];
}

const FENCE = /^(\s*)(```+)\s*([\w-]*)/;

export function readMarkdown(file: string): MarkdownParts {
  const lines = fs.readFileSync(path.join(ROOT, file), "utf8").split("\n");
  const parts: MarkdownParts = { blocks: [], spans: [], headings: [], links: [] };
  let heading = "";
  let paragraph: { line: number; text: string }[] = [];
  const flush = () => {
    // Spans may run over a line break inside a paragraph: join the paragraph first.
    const text = paragraph.map((p) => p.text).join("\n");
    const seen: string[] = [];
    for (const match of text.matchAll(/(`+)([^`]+?)\1/g)) {
      const line = paragraph[0]!.line + text.slice(0, match.index).split("\n").length - 1;
      const code = match[2]!.replace(/\s+/g, " ").trim();
      parts.spans.push({ file, line, code, heading, paragraph: [...seen] });
      seen.push(code);
    }
    const outside = text.replace(/(`+)[^`]+?\1/g, "");
    for (const match of outside.matchAll(/\]\(([^)\s]+)\)/g)) {
      parts.links.push({ line: paragraph[0]!.line + outside.slice(0, match.index).split("\n").length - 1, target: match[1]! });
    }
    paragraph = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const fence = FENCE.exec(lines[i]!);
    if (fence) {
      flush();
      const start = i;
      const body: string[] = [];
      for (i++; i < lines.length && !lines[i]!.trimStart().startsWith(fence[2]!); i++) body.push(lines[i]!.slice(fence[1]!.length));
      parts.blocks.push({ file, line: start + 1, lang: fence[3]!, text: body.join("\n") });
      continue;
    }
    const line = lines[i]!;
    if (/^#{1,6} /.test(line)) {
      flush();
      heading = line.replace(/^#+ /, "");
      parts.headings.push(heading);
      paragraph = [{ line: i + 1, text: heading }];
      flush();
      continue;
    }
    if (line.trim() === "") flush();
    else paragraph.push({ line: i + 1, text: line });
  }
  flush();
  return parts;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
export function anchorOf(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/ /g, "-");
}

/**
 * The simple commands of a shell script, as words: continuation lines
 * joined, `$ ` prompts and comments dropped, split at `&&`, `||`, `|`, `;`,
 * and every `$(...)` taken out as a command of its own. Quotes group words
 * and are removed; what a variable holds is not known, so `$VAR` stays as written.
 */
export function shellCommands(script: string): string[][] {
  const commands: string[][] = [];
  const text = script.replace(/\\\n/g, " ");
  for (const rawLine of text.split("\n")) {
    const line = rawLine.replace(/^\s*\$ /, "");
    splitLine(line, commands);
  }
  return commands.filter((words) => words.length > 0);
}

function splitLine(line: string, out: string[][]): void {
  let words: string[] = [];
  let word: string | undefined;
  const end = () => {
    if (word !== undefined) words.push(word);
    word = undefined;
  };
  const next = () => {
    end();
    out.push(words);
    words = [];
  };
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'") {
      const close = line.indexOf("'", i + 1);
      const stop = close < 0 ? line.length : close;
      word = (word ?? "") + line.slice(i + 1, stop);
      i = stop;
    } else if (c === '"') {
      let j = i + 1;
      let inner = "";
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === "\\" && j + 1 < line.length) inner += line[++j];
        else if (line.startsWith("$(", j)) {
          const close = matchingParen(line, j + 1);
          splitLine(line.slice(j + 2, close), out);
          inner += "SUBSTITUTED";
          j = close;
        } else inner += line[j];
      }
      word = (word ?? "") + inner;
      i = j;
    } else if (line.startsWith("$(", i)) {
      const close = matchingParen(line, i + 1);
      splitLine(line.slice(i + 2, close), out);
      word = `${word ?? ""}SUBSTITUTED`;
      i = close;
    } else if (c === "#" && word === undefined) {
      break;
    } else if (line.startsWith("&&", i) || line.startsWith("||", i)) {
      next();
      i++;
    } else if (c === "|" || c === ";") {
      next();
    } else if (c === " " || c === "\t") {
      end();
    } else {
      word = (word ?? "") + c;
    }
  }
  next();
}

function matchingParen(line: string, open: number): number {
  let depth = 0;
  for (let i = open; i < line.length; i++) {
    if (line[i] === "(") depth++;
    else if (line[i] === ")" && --depth === 0) return i;
  }
  return line.length;
}

// Every command the docs show is one the CLI takes: each `tsserve` command in
// README.md and docs/ is parsed against the command's own options, each
// `npm run` script exists, the offline `$ tsserve render` example is run and
// its output compared, the links between the pages resolve, and the files
// they name exist.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { describe, expect, it } from "vitest";
import { ARCHIVE_FORMATS } from "../../../src/archive/archive.ts";
import { ENVELOPE_OF } from "../../../src/kserve/inference-service.ts";
import { COMMAND_NAMES, loadCommand } from "../../../src/cli/main.ts";
import { DEMO_OPTIONS } from "../../../scripts/demo-interface.ts";
import { ROOT, anchorOf, docFiles, readMarkdown, shellCommands, type FencedBlock } from "./markdown.ts";

const SHELL_LANGS = new Set(["", "sh", "bash", "shell", "console"]);
const PAGES = docFiles().map((file) => ({ file, ...readMarkdown(file) }));
const BLOCKS = PAGES.flatMap((page) => page.blocks.filter((block) => SHELL_LANGS.has(block.lang)));
const SCRIPTS = (JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;

/** Values some flags must take, from the code that checks them. */
const FLAG_VALUES: Record<string, Record<string, readonly string[]>> = {
  archive: { "archive-format": ARCHIVE_FORMATS },
  kserve: { protocol: Object.keys(ENVELOPE_OF) },
};

/** The words after `tsserve` (or `npx tsserve`, `node bin/tsserve.mjs`), or undefined for another program. */
function tsserveArgs(words: string[]): string[] | undefined {
  const rest = words.filter((w, i) => !(i === 0 && /^[A-Z_]+=/.test(w)));
  if (rest[0] === "tsserve") return rest.slice(1);
  if (rest[0] === "npx" && rest[1] === "tsserve") return rest.slice(2);
  if (rest[0] === "node" && rest[1] === "bin/tsserve.mjs") return rest.slice(2);
  return undefined;
}

/** Placeholders of the docs: `...` for elided arguments, `[--flag X]` for optional ones. */
function withoutPlaceholders(args: string[]): string[] {
  return args.map((a) => a.replace(/^\[+|\]+$/g, "")).filter((a) => a !== "" && a !== "..." && a !== "…");
}

async function problemsOfTsserve(args: string[]): Promise<string[]> {
  const [name, ...rest] = withoutPlaceholders(args);
  if (name === undefined || name === "--help" || name === "--version" || name === "-V") return [];
  if (name === "help") return rest[0] === undefined || (await loadCommand(rest[0])) ? [] : [`help ${rest[0]}: no such command`];
  const command = await loadCommand(name);
  if (!command) return [`no command "${name}" (the CLI has ${COMMAND_NAMES.join(", ")})`];
  if (rest.includes("--help") || rest.includes("-h")) return [];
  try {
    const { values } = parseArgs({ args: rest, options: command.options, allowPositionals: command.positionals ?? false, strict: true });
    const allowed = FLAG_VALUES[name] ?? {};
    return Object.entries(allowed).flatMap(([flag, choices]) =>
      values[flag] === undefined || choices.includes(values[flag] as string)
        ? []
        : [`--${flag} ${values[flag]}: not one of ${choices.join(", ")}`],
    );
  } catch (error) {
    return [(error as Error).message];
  }
}

function problemsOfNpmRun(words: string[]): string[] {
  if (words[0] !== "npm" || words[1] !== "run") return [];
  const script = words[2];
  if (script === undefined || !(script in SCRIPTS)) return [`npm run ${script}: no such script in package.json`];
  const dash = words.indexOf("--");
  if (script !== "demo" || dash < 0) return [];
  try {
    parseArgs({ args: words.slice(dash + 1), options: DEMO_OPTIONS, strict: true });
    return [];
  } catch (error) {
    return [`npm run demo: ${(error as Error).message}`];
  }
}

const where = (block: FencedBlock) => `${block.file}:${block.line}`;

describe("reading shell examples", () => {
  it("splits lines into commands at &&, |, ; and $(...), joins continuations, drops prompts and comments", () => {
    const script = [
      "$ npx tsserve start && npx tsserve register m.mar   # then wait",
      'curl -H "Authorization: Bearer $(npx tsserve token inference)" \\',
      '  -d \'{"a": "b c"}\' http://x | head; echo done',
    ].join("\n");
    expect(shellCommands(script)).toEqual([
      ["npx", "tsserve", "start"],
      ["npx", "tsserve", "register", "m.mar"],
      ["npx", "tsserve", "token", "inference"],
      ["curl", "-H", "Authorization: Bearer SUBSTITUTED", "-d", '{"a": "b c"}', "http://x"],
      ["head"],
      ["echo", "done"],
    ]);
  });

  it("anchors headings as GitHub does", () => {
    expect(anchorOf("Pack a handler: `tsserve archive`")).toBe("pack-a-handler-tsserve-archive");
    expect(anchorOf("Why the model API is on, and why everything is bound to 127.0.0.1")).toBe(
      "why-the-model-api-is-on-and-why-everything-is-bound-to-127001",
    );
    expect(anchorOf("3. KServe")).toBe("3-kserve");
  });
});

describe("the commands the docs show", () => {
  it("finds the commands it checks (the README's two, and many tsserve ones)", () => {
    const all = BLOCKS.flatMap((block) => shellCommands(block.text));
    expect(all.filter((words) => tsserveArgs(words) !== undefined).length).toBeGreaterThan(30);
    const readme = BLOCKS.filter((block) => block.file === "README.md");
    expect(shellCommands(readme[0]!.text)).toEqual([
      ["npm", "run", "demo"],
      ["npm", "test"],
    ]);
  });

  it("parses every tsserve command in a code block against that command's options", async () => {
    const problems: string[] = [];
    for (const block of BLOCKS) {
      for (const words of shellCommands(block.text)) {
        const args = tsserveArgs(words);
        if (args === undefined) continue;
        for (const problem of await problemsOfTsserve(args)) problems.push(`${where(block)}: tsserve ${args.join(" ")}: ${problem}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("names only npm scripts that package.json has, and demo flags the demo takes", () => {
    const problems = BLOCKS.flatMap((block) =>
      shellCommands(block.text).flatMap((words) => problemsOfNpmRun(words).map((p) => `${where(block)}: ${p}`)),
    );
    const inline = PAGES.flatMap((page) =>
      page.spans.flatMap((span) => {
        const match = /^npm run ([\w:-]+)(.*)$/.exec(span.code);
        return match
          ? problemsOfNpmRun(["npm", "run", match[1]!, ...match[2]!.trim().split(/\s+/).filter(Boolean)]).map(
              (p) => `${span.file}:${span.line}: ${p}`,
            )
          : [];
      }),
    );
    expect([...problems, ...inline]).toEqual([]);
  });

  it("names only commands and flags the CLI has in inline code, flags resolved against the command of their paragraph or section", async () => {
    const problems: string[] = [];
    // `tsserve render: refused ...` is a message, not a command: the name is followed by a space or the end.
    const commandIn = (code: string) => /(?:^|[\s(])(?:npx )?tsserve ([a-z]+)(?=\s|$)/.exec(code)?.[1];
    for (const page of PAGES) {
      for (const span of page.spans) {
        const named = commandIn(span.code);
        const context = named ?? [...span.paragraph].reverse().map(commandIn).find(Boolean) ?? commandIn(span.heading);
        if (named === undefined && !span.code.startsWith("-")) continue;
        if (context === undefined) continue;
        if (context === "help") {
          // `tsserve help <command>`: the CLI's own; the word after it must be a command.
          const topic = /tsserve help ([a-z]+)/.exec(span.code)?.[1];
          if (topic !== undefined && !(await loadCommand(topic)))
            problems.push(`${span.file}:${span.line}: \`${span.code}\`: no command "${topic}"`);
          continue;
        }
        const command = await loadCommand(context);
        if (!command) {
          problems.push(`${span.file}:${span.line}: \`${span.code}\`: no command "${context}"`);
          continue;
        }
        const known = new Set(
          Object.entries(command.options).flatMap(([long, option]) => [`--${long}`, ...(option.short ? [`-${option.short}`] : [])]),
        );
        const after = named ? span.code.slice(span.code.indexOf(`tsserve ${named}`)) : span.code;
        for (const flag of after.match(/(?<![\w-])--?[a-z][\w-]*/gi) ?? []) {
          if (!known.has(flag) && flag !== "--help" && flag !== "-h")
            problems.push(`${span.file}:${span.line}: \`${span.code}\`: tsserve ${context} has no ${flag}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it("runs the offline examples shown with a $ prompt and gets the output shown", () => {
    const examples = BLOCKS.filter((block) => block.lang === "console");
    expect(examples.length).toBeGreaterThan(0);
    for (const block of examples) {
      const lines = block.text.split("\n");
      for (let i = 0; i < lines.length; i++) {
        if (!lines[i]!.startsWith("$ ")) continue;
        const shown: string[] = [];
        for (let j = i + 1; j < lines.length && !lines[j]!.startsWith("$ "); j++) shown.push(lines[j]!);
        const script = lines[i]!.slice(2).replace(/(^|\| *)tsserve /g, "$1node bin/tsserve.mjs ");
        const output = execFileSync("bash", ["-c", script], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
        expect(output.trimEnd(), `${where(block)}: ${lines[i]}`).toBe(shown.join("\n").trimEnd());
      }
    }
  }, 120_000);
});

describe("the pages", () => {
  it("link only to files and headings that exist", () => {
    const problems: string[] = [];
    for (const page of PAGES) {
      for (const link of page.links) {
        if (/^[a-z]+:/.test(link.target)) continue;
        const [file, anchor] = link.target.split("#") as [string, string | undefined];
        const target = file === "" ? page.file : path.normalize(path.join(path.dirname(page.file), file));
        if (!fs.existsSync(path.join(ROOT, target))) {
          problems.push(`${page.file}:${link.line}: ${link.target}: no file ${target}`);
          continue;
        }
        if (anchor === undefined || !target.endsWith(".md")) continue;
        const headings = readMarkdown(target).headings.map(anchorOf);
        if (!headings.includes(anchor)) problems.push(`${page.file}:${link.line}: ${link.target}: no heading #${anchor} in ${target}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("name only files and folders of the repository that exist", () => {
    const repoPath = /^(?:src|test|scripts|bench|handlers|configs|python_shim|bin|docs)\/[\w./-]+$/;
    const missing = PAGES.flatMap((page) =>
      page.spans
        .filter((span) => repoPath.test(span.code) && !fs.existsSync(path.join(ROOT, span.code)))
        .map((span) => `${span.file}:${span.line}: ${span.code}`),
    );
    expect(missing).toEqual([]);
  });

  it("keep the README short and starting with the two commands", () => {
    const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
    expect(readme.split("\n").length).toBeLessThanOrEqual(150);
    const firstBlock = PAGES[0]!.blocks[0]!;
    expect(firstBlock.text).toMatch(/^npm run demo\b.*\nnpm test\b/);
  });
});

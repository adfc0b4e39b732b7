// Child processes are spawned with argument lists, never through a shell, so
// no config value or request field can reach one (issue 7, security). This
// scans the project's own sources (TypeScript, JavaScript, Python).
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const TREES = ["src", "bin", "scripts", "handlers", "bench", "test", "python_shim"];
const SELF = path.resolve(import.meta.filename);

/** [what is wrong, pattern, languages]. */
const RULES: [string, RegExp, "ts" | "py"][] = [
  ["a shell option", /\bshell\s*:\s*(true|["'`])/, "ts"],
  ["child_process exec/execSync (runs a shell)", /\b(exec|execSync)\s*\(/, "ts"],
  ["child_process exec imported", /import\s*\{[^}]*\b(exec|execSync)\b[^}]*\}\s*from\s*["'](node:)?child_process["']/, "ts"],
  ["shell=True", /\bshell\s*=\s*True\b/, "py"],
  ["os.system / os.popen", /\bos\.(system|popen)\s*\(/, "py"],
  ["subprocess.getoutput", /\bsubprocess\.(getoutput|getstatusoutput)\s*\(/, "py"],
  ["a subprocess command given as one string", /\bsubprocess\.(run|Popen|call|check_call|check_output)\(\s*[fbr]?["']/, "py"],
];

/** Regex `.exec(` is not child_process exec: drop `/.../flags.exec(` and `re.exec(` style calls first. */
function stripRegexExec(line: string): string {
  return line.replace(/(\/[a-z]*|\)|\w)\.exec\s*\(/g, "$1.<regex-exec>(");
}

function findShellUses(file: string, text: string): string[] {
  const lang = file.endsWith(".py") ? "py" : /\.(ts|mts|mjs|js|cjs)$/.test(file) ? "ts" : undefined;
  if (!lang) return [];
  const found: string[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = lang === "ts" ? stripRegexExec(raw) : raw;
    if (/^\s*(\/\/|#|\*)/.test(line)) return; // comments
    for (const [what, pattern, rule] of RULES)
      if (rule === lang && pattern.test(line)) found.push(`${path.relative(ROOT, file)}:${i + 1}: ${what}: ${raw.trim()}`);
  });
  return found;
}

function sources(dir: string, out: string[] = []): string[] {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === "node_modules" || entry.name.startsWith(".") || entry.name === "__pycache__" || entry.name.endsWith(".egg-info"))
      continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) sources(full, out);
    else if (entry.isFile() && /\.(ts|mts|mjs|js|cjs|py)$/.test(entry.name) && full !== SELF) out.push(full);
  }
  return out;
}

describe("no shell anywhere", () => {
  it("the detector catches each way of reaching a shell, and leaves argument lists and regex .exec alone", () => {
    const bad: [string, string][] = [
      ["a.ts", 'spawn("ls", ["-l"], { shell: true })'],
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the source text the scanner must refuse, not a template
      ["a.ts", "execSync(`tar xf ${archive}`)"],
      ["a.ts", 'import { exec } from "node:child_process";'],
      ["a.py", "subprocess.run(cmd, shell=True)"],
      ["a.py", 'os.system("rm -rf " + path)'],
      ["a.py", 'subprocess.check_output("node --version")'],
      ["a.py", "subprocess.getoutput(cmd)"],
    ];
    for (const [file, line] of bad) expect(findShellUses(path.join(ROOT, file), line), line).toHaveLength(1);
    const fine: [string, string][] = [
      ["a.ts", 'spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] })'],
      ["a.ts", "const match = /^v(\\d+)/.exec(out);"],
      ["a.ts", "execFile(cmd, argv, { cwd: ROOT }, callback)"],
      ["a.py", 'subprocess.Popen([node, "--enable-source-maps", bundle], stdin=subprocess.PIPE)'],
      ["a.py", 'subprocess.run([path, "--version"], capture_output=True)'],
    ];
    for (const [file, line] of fine) expect(findShellUses(path.join(ROOT, file), line), line).toEqual([]);
  });

  it("no source file of the project spawns a process through a shell", () => {
    const files = TREES.flatMap((t) => (fs.existsSync(path.join(ROOT, t)) ? sources(path.join(ROOT, t)) : []));
    expect(files.length).toBeGreaterThan(50);
    expect(files.some((f) => f.endsWith(path.join("tsserve_shim", "bridge", "node_process.py")))).toBe(true);
    const uses = files.flatMap((f) => findShellUses(f, fs.readFileSync(f, "utf8")));
    expect(uses).toEqual([]);
  });
});

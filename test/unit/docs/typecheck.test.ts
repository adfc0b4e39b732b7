// The docs' handler examples compile: every ```ts block that is a whole
// handler module (it has `export default class`) is type-checked with tsc
// under `strict`, importing "tsserve" as a user's project does (the package's
// own name, resolved to its sources).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, docFiles, readMarkdown } from "./markdown.ts";

const HANDLER_BLOCKS = docFiles().flatMap((file) =>
  readMarkdown(file).blocks.filter((block) => block.lang === "ts" && /^export default class /m.test(block.text)),
);

const TSCONFIG = {
  compilerOptions: {
    target: "ES2022",
    module: "NodeNext",
    moduleResolution: "NodeNext",
    customConditions: ["tsserve-source"],
    strict: true,
    allowImportingTsExtensions: true,
    noEmit: true,
    skipLibCheck: true,
    types: ["node"],
  },
  include: ["*.ts"],
};

describe("the docs' handler examples", () => {
  it("are found (README and docs/handlers.md have some)", () => {
    expect(HANDLER_BLOCKS.map((block) => block.file)).toEqual(expect.arrayContaining(["README.md", "docs/handlers.md"]));
  });

  it("type-check under strict", () => {
    // Inside the package, so that `from "tsserve"` is the package's own name.
    const dir = path.join(ROOT, ".work", "docs-typecheck");
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify(TSCONFIG, null, 2));
    const names = new Map<string, string>();
    for (const block of HANDLER_BLOCKS) {
      const name = `${block.file.replace(/[/.]/g, "_")}_${block.line}.ts`;
      names.set(name, `${block.file}:${block.line}`);
      fs.writeFileSync(path.join(dir, name), block.text);
    }
    const tsc = spawnSync(process.execPath, [path.join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", dir], {
      cwd: dir,
      encoding: "utf8",
      timeout: 120_000,
    });
    // Name each error by the doc and line of its block.
    const errors = (tsc.stdout + tsc.stderr).replace(
      /^(\S+\.ts)\((\d+),\d+\)/gm,
      (_, file: string, line: string) => `${names.get(path.basename(file)) ?? file} +${line}`,
    );
    expect(errors).toBe("");
    expect(tsc.status).toBe(0);
  }, 150_000);
});

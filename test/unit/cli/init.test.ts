import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { className } from "../../../src/cli/commands/init.ts";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const BIN = path.join(ROOT, "bin/tsserve.mjs");
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A scratch project that imports tsserve from this checkout (package.json named tsserve, src/ linked in). */
function scratchProject(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "tsserve-init-"));
  dirs.push(dir);
  writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "tsserve", type: "module" }));
  spawnSync("ln", ["-s", path.join(ROOT, "src"), path.join(dir, "src")]);
  spawnSync("ln", ["-s", path.join(ROOT, "node_modules"), path.join(dir, "node_modules")]);
  return dir;
}
const run = (cwd: string, ...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: "utf8", timeout: 60_000 });

describe("tsserve init", () => {
  it("scaffolds a handler, config and test that render and pass", () => {
    const dir = scratchProject();
    const r = run(dir, "init", "my-model-7b");
    expect(r.status).toBe(0);
    for (const f of ["handlers/my-model-7b.ts", "configs/my-model-7b.yaml", "test/unit/handlers/my-model-7b.test.ts"]) {
      expect(existsSync(path.join(dir, f)), f).toBe(true);
    }
    expect(readFileSync(path.join(dir, "handlers/my-model-7b.ts"), "utf8")).toContain(
      "export default class MyModel7b extends CompletionHandler",
    );
    writeFileSync(path.join(dir, "req.json"), JSON.stringify({ prompt: "hello" }));
    const rendered = run(
      dir,
      "render",
      "--handler",
      "handlers/my-model-7b.ts",
      "--request",
      "req.json",
      "--config",
      "configs/my-model-7b.yaml",
    );
    expect(rendered.stderr).toBe("");
    expect(JSON.parse(rendered.stdout)).toEqual({ prompts: ["hello"] });
    const tests = spawnSync(
      process.execPath,
      [path.join(ROOT, "node_modules/vitest/vitest.mjs"), "run", "--root", dir, "test/unit/handlers/my-model-7b.test.ts"],
      { cwd: dir, encoding: "utf8", timeout: 120_000 },
    );
    expect(tests.status, tests.stdout + tests.stderr).toBe(0);
  }, 180_000);

  it("writes a strict tsconfig.json under which the scaffold type-checks, and keeps one that exists", () => {
    const dir = scratchProject();
    expect(run(dir, "init", "checked").status).toBe(0);
    const tsconfig = JSON.parse(readFileSync(path.join(dir, "tsconfig.json"), "utf8"));
    expect(tsconfig.compilerOptions.strict).toBe(true);
    const tsc = spawnSync(process.execPath, [path.join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", dir], {
      cwd: dir,
      encoding: "utf8",
      timeout: 120_000,
    });
    expect(tsc.stdout + tsc.stderr).toBe("");
    expect(tsc.status).toBe(0);
    const own = mkdtempSync(path.join(tmpdir(), "tsserve-init-own-"));
    dirs.push(own);
    writeFileSync(path.join(own, "tsconfig.json"), "{}\n");
    expect(run(own, "init", "kept").stdout).not.toContain("tsconfig.json");
    expect(readFileSync(path.join(own, "tsconfig.json"), "utf8")).toBe("{}\n");
  }, 150_000);

  it("refuses to overwrite existing files", () => {
    const dir = scratchProject();
    expect(run(dir, "init", "m").status).toBe(0);
    const again = run(dir, "init", "m");
    expect(again.status).toBe(2);
    expect(again.stderr).toMatch(/refusing to overwrite handlers\/m\.ts/);
  });

  it("refuses a model name TorchServe would not accept", () => {
    const r = run(scratchProject(), "init", "../escape");
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/not a valid model name/);
  });

  it("derives class names from model names", () => {
    expect(className("llama-2-7b-chat")).toBe("Llama27bChat");
    expect(className("7b_model")).toBe("Model7bModel");
  });
});

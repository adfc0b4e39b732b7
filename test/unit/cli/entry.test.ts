import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
// @ts-expect-error: plain JavaScript beside the bin script, no types
import { chooseEntry } from "../../../bin/entry.mjs";

const ROOT = path.resolve(import.meta.dirname, "../../..");

/** A package folder with src/ and dist/cli/main.mjs whose mtimes the test sets. */
function fakePackage(builtAfterSources: boolean) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "entry-"));
  fs.mkdirSync(path.join(root, "src", "cli"), { recursive: true });
  fs.mkdirSync(path.join(root, "dist", "cli"), { recursive: true });
  const source = path.join(root, "src", "cli", "main.ts");
  const built = path.join(root, "dist", "cli", "main.mjs");
  for (const f of [source, built, path.join(root, "package.json")]) fs.writeFileSync(f, "");
  const old = new Date(Date.now() - 60_000);
  const now = new Date();
  fs.utimesSync(path.join(root, "package.json"), old, old);
  fs.utimesSync(source, builtAfterSources ? old : now, builtAfterSources ? old : now);
  fs.utimesSync(built, builtAfterSources ? now : old, builtAfterSources ? now : old);
  return root;
}

describe("bin/tsserve.mjs's choice of entry", () => {
  it("runs the prebuilt CLI while it is newer than every source", () => {
    const root = fakePackage(true);
    expect(chooseEntry(root, ["archive"])).toEqual({ kind: "prebuilt", path: path.join(root, "dist", "cli", "main.mjs") });
  });

  it("runs the sources through tsx when a source changed after the build, or no build exists", () => {
    expect(chooseEntry(fakePackage(false), ["archive"]).kind).toBe("sources");
    const unbuilt = fakePackage(true);
    fs.rmSync(path.join(unbuilt, "dist"), { recursive: true });
    expect(chooseEntry(unbuilt, ["status"]).kind).toBe("sources");
  });

  it("runs the prebuilt CLI of an installed package whatever its files' mtimes", () => {
    const root = fakePackage(false);
    const installed = path.join(root, "node_modules", "tsserve");
    fs.mkdirSync(path.dirname(installed), { recursive: true });
    fs.renameSync(path.join(root, "src"), path.join(root, "moved-src"));
    fs.mkdirSync(installed);
    for (const dir of ["dist", "moved-src"]) fs.renameSync(path.join(root, dir), path.join(installed, dir === "moved-src" ? "src" : dir));
    fs.writeFileSync(path.join(installed, "package.json"), "");
    expect(chooseEntry(installed, ["archive"])).toEqual({ kind: "prebuilt", path: path.join(installed, "dist", "cli", "main.mjs") });
    expect(chooseEntry(installed, ["render"]).kind).toBe("sources");
  });

  it("runs render and init from the sources, which import handlers written in TypeScript", () => {
    const root = fakePackage(true);
    expect(chooseEntry(root, ["render"]).kind).toBe("sources");
    expect(chooseEntry(root, ["init"]).kind).toBe("sources");
  });

  it("the prebuilt CLI and the sources print the same usage", () => {
    // Built into a folder of its own: rebuilding dist/ would race the other suites' CLI runs.
    const out = path.join(ROOT, ".work", "cli-build-test", "cli");
    fs.rmSync(out, { recursive: true, force: true });
    execFileSync(process.execPath, ["--import", "tsx", path.join(ROOT, "scripts", "build-cli.ts"), out]);
    const usage = (entry: string) =>
      execFileSync(
        process.execPath,
        ["--import", "tsx", "-e", `import(${JSON.stringify(pathToFileURL(entry).href)}).then((m) => m.runMain(["--help"]))`],
        { encoding: "utf8", cwd: ROOT },
      );
    const prebuilt = usage(path.join(out, "main.mjs"));
    expect(prebuilt).toContain("Usage: tsserve <command>");
    expect(prebuilt).toContain("archive");
    expect(prebuilt).toBe(usage(path.join(ROOT, "src", "cli", "main.ts")));
  });
});

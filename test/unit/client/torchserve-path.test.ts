// Which torchserve `tsserve start` runs: --torchserve, $TSSERVE_TORCHSERVE,
// $TSSERVE_VENV, the project's .venv, tsserve's own .venv, then PATH.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { findTorchServe, TorchServeNotFoundError, venvOf } from "../../../src/client/torchserve-path.ts";
import { projectRoot } from "../../../src/client/paths.ts";

function launcher(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "torchserve");
  fs.writeFileSync(file, "#!/bin/sh\n");
  fs.chmodSync(file, 0o755);
  return file;
}

/** A project with a .venv, a tsserve package with its own .venv, a folder on PATH, and one more venv. */
function world() {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ts-path-"));
  const project = path.join(root, "project");
  const pkg = path.join(root, "pkg");
  const onPath = launcher(path.join(root, "bin"));
  const projectVenv = launcher(path.join(project, ".venv", "bin"));
  fs.writeFileSync(path.join(project, ".venv", "pyvenv.cfg"), "home = /usr/bin\n");
  const pkgVenv = launcher(path.join(pkg, ".venv", "bin"));
  const otherVenv = launcher(path.join(root, "other", "bin"));
  const explicit = launcher(path.join(root, "explicit"));
  return {
    root,
    project,
    pkg,
    onPath,
    projectVenv,
    pkgVenv,
    otherVenv,
    explicit,
    env: { PATH: path.join(root, "bin") } as NodeJS.ProcessEnv,
  };
}

describe("findTorchServe", () => {
  it("takes each place in order, falling through to the next when one is absent", () => {
    const w = world();
    const find = (env: NodeJS.ProcessEnv, explicit?: string) =>
      findTorchServe({ explicit, projectRoot: w.project, packageRoot: w.pkg, env });
    expect(find({ ...w.env, TSSERVE_TORCHSERVE: w.onPath }, w.explicit)).toEqual({ path: w.explicit, source: "--torchserve" });
    expect(find({ ...w.env, TSSERVE_TORCHSERVE: w.onPath, TSSERVE_VENV: path.join(w.root, "other") })).toEqual({
      path: w.onPath,
      source: "$TSSERVE_TORCHSERVE",
    });
    expect(find({ ...w.env, TSSERVE_VENV: path.join(w.root, "other") })).toEqual({ path: w.otherVenv, source: "$TSSERVE_VENV" });
    expect(find(w.env)).toEqual({ path: w.projectVenv, source: "the project's .venv" });
    fs.rmSync(path.join(w.project, ".venv"), { recursive: true });
    expect(find(w.env)).toEqual({ path: w.pkgVenv, source: "tsserve's own .venv" });
    fs.rmSync(path.join(w.pkg, ".venv"), { recursive: true });
    expect(find(w.env)).toEqual({ path: w.onPath, source: "PATH" });
    // A name (no slash) is looked up on PATH.
    expect(find(w.env, "torchserve")).toEqual({ path: w.onPath, source: "--torchserve" });
  });

  it("says what it tried and how to get one when there is none", () => {
    const w = world();
    for (const dir of [path.join(w.project, ".venv"), path.join(w.pkg, ".venv")]) fs.rmSync(dir, { recursive: true });
    const attempt = () => findTorchServe({ projectRoot: w.project, packageRoot: w.pkg, env: { PATH: path.join(w.root, "nothing") } });
    expect(attempt).toThrow(TorchServeNotFoundError);
    expect(attempt).toThrow(
      /--torchserve, \$TSSERVE_TORCHSERVE, .*project\/\.venv\/bin\/torchserve.*torchserve on PATH[\s\S]*npx tsserve setup/,
    );
  });

  it("refuses a named launcher that is not an executable, naming where it came from", () => {
    const w = world();
    const notExecutable = path.join(w.root, "plain");
    fs.writeFileSync(notExecutable, "");
    expect(() => findTorchServe({ explicit: notExecutable, projectRoot: w.project, packageRoot: w.pkg, env: w.env })).toThrow(
      /^--torchserve names .*plain, which is not an executable/,
    );
    expect(() =>
      findTorchServe({ projectRoot: w.project, packageRoot: w.pkg, env: { ...w.env, TSSERVE_TORCHSERVE: "no-such-launcher" } }),
    ).toThrow(/^\$TSSERVE_TORCHSERVE names no-such-launcher/);
  });

  it("knows a venv's launcher from a bare one", () => {
    const w = world();
    expect(venvOf(w.projectVenv)).toBe(path.join(w.project, ".venv"));
    expect(venvOf(w.onPath)).toBeUndefined();
  });
});

describe("projectRoot", () => {
  it("is the folder of the nearest package.json above, else the folder itself", () => {
    const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "ts-proj-")));
    const deep = path.join(root, "a", "b");
    fs.mkdirSync(deep, { recursive: true });
    fs.writeFileSync(path.join(root, "a", "package.json"), "{}");
    expect(projectRoot(deep)).toBe(path.join(root, "a"));
    expect(projectRoot(path.join(root, "a"))).toBe(path.join(root, "a"));
  });
});

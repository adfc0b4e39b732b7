// `tsserve token` finds the keys of a demo started with --port-base (.work/demo-P), issue 28.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { demoWorkDir, keyedWorkPaths } from "../../../src/client/paths.ts";

function project(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "keys-"));
  fs.writeFileSync(path.join(root, "package.json"), "{}");
  return root;
}

function keys(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "key_file.json"), "{}");
}

describe("keyedWorkPaths", () => {
  it("takes the project's own TorchServe when it has a key file", () => {
    const root = project();
    keys(path.join(root, ".work", "torchserve"));
    keys(demoWorkDir(root, 18080));
    expect(keyedWorkPaths({ TSSERVE_ROOT: root }).keyFile).toBe(path.join(root, ".work", "torchserve", "key_file.json"));
  });

  it("finds the one demo started with --port-base that has a key file", () => {
    const root = project();
    fs.mkdirSync(demoWorkDir(root, 19000), { recursive: true }); // a stopped demo: no key file
    keys(demoWorkDir(root, 18080));
    const paths = keyedWorkPaths({ TSSERVE_ROOT: root });
    expect(paths.keyFile).toBe(path.join(root, ".work", "demo-18080", "key_file.json"));
    expect(paths.state).toBe(path.join(root, ".work", "demo-18080", "tsserve-state.json"));
  });

  it("names the demos when several have keys, and $TSSERVE_WORK_DIR always wins", () => {
    const root = project();
    keys(demoWorkDir(root, 18080));
    keys(demoWorkDir(root, 18100));
    expect(() => keyedWorkPaths({ TSSERVE_ROOT: root })).toThrow(
      /several demos have one: set TSSERVE_WORK_DIR to one of .*demo-18080, .*demo-18100/,
    );
    const chosen = demoWorkDir(root, 18100);
    expect(keyedWorkPaths({ TSSERVE_ROOT: root, TSSERVE_WORK_DIR: chosen }).keyFile).toBe(path.join(chosen, "key_file.json"));
  });

  it("leaves the default when nothing has keys (the command then says none runs)", () => {
    const root = project();
    expect(keyedWorkPaths({ TSSERVE_ROOT: root }).keyFile).toBe(path.join(root, ".work", "torchserve", "key_file.json"));
  });
});

// No import circles in src/: not between files (type-only imports count), not
// between folders. A circle makes two modules one (neither can be read,
// tested or moved alone) and, for values, leaves one of them half-initialised
// at load time. The detector is tested on small made-up trees first.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { fileGraph, findCycles, folderGraph, importSpecifiers } from "./import-graph.ts";

const SRC = path.resolve(import.meta.dirname, "../../../src");

/** A throwaway source tree from `{relative path: text}`. */
function tree(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "import-graph-"));
  for (const [file, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), text);
  }
  return root;
}

const show = (cycles: string[][]) => cycles.map((cycle) => cycle.join(" -> "));

describe("the import graph", () => {
  it("reads every kind of import and re-export, type-only ones too, and skips comments", () => {
    const source = [
      'import { a } from "./a.ts";',
      'import type { B } from "./b.ts";',
      "import {\n  c,\n  type C,\n} from './c.ts';",
      'export { d } from "./d.ts";',
      'export type { E } from "./e.ts";',
      'export * from "./f.ts";',
      'import "./g.ts";',
      'const h = await import("./h.ts");',
      '// import { x } from "./commented.ts";',
      '/** import { y } from "./doc.ts"; */',
      'import { z } from "zod";',
    ].join("\n");
    expect(importSpecifiers(source)).toEqual(
      expect.arrayContaining(["./a.ts", "./b.ts", "./c.ts", "./d.ts", "./e.ts", "./f.ts", "./g.ts", "./h.ts", "zod"]),
    );
    expect(importSpecifiers(source)).not.toContain("./commented.ts");
    expect(importSpecifiers(source)).not.toContain("./doc.ts");
  });

  it("finds a circle made of type-only imports", () => {
    const root = tree({
      "x/a.ts": 'import type { B } from "./b.ts";\nexport type A = B;',
      "x/b.ts": 'import type { C } from "../y/c.ts";\nexport type B = C;',
      "y/c.ts": 'import type { A } from "../x/a.ts";\nexport type C = A | 1;',
      "y/d.ts": 'import { a } from "../x/a.ts";',
    });
    expect(show(findCycles(fileGraph(root)))).toEqual([["x/a.ts", "x/b.ts", "y/c.ts", "x/a.ts"].join(" -> ")]);
    expect(show(findCycles(folderGraph(fileGraph(root))))).toEqual(["x -> y -> x"]);
  });

  it("finds a circle between folders that no two files make", () => {
    const root = tree({
      "config/json-schema.ts": 'import { R } from "../completions/request.ts";',
      "completions/request.ts": "export const R = 1;",
      "completions/handler.ts": 'import { S } from "../config/model-config.ts";',
      "config/model-config.ts": "export const S = 1;",
    });
    expect(findCycles(fileGraph(root))).toEqual([]);
    expect(show(findCycles(folderGraph(fileGraph(root))))).toEqual(["completions -> config -> completions"]);
  });

  it("finds nothing in a tree that only points one way", () => {
    const root = tree({
      "a/a.ts": 'import "../b/b.ts";',
      "b/b.ts": 'export * from "./c.ts";',
      "b/c.ts": "export const c = 1;",
      "index.ts": 'export * from "./a/a.ts";',
    });
    expect(findCycles(fileGraph(root))).toEqual([]);
    expect(findCycles(folderGraph(fileGraph(root)))).toEqual([]);
  });
});

describe("src/", () => {
  const files = fileGraph(SRC);

  it("is read whole (the graph sees the modules it should)", () => {
    expect(files.size).toBeGreaterThan(50);
    expect(files.get(path.join("completions", "completion-handler.ts"))).toContain(path.join("completions", "openai-routes.ts"));
  });

  it("has no import circle between files", () => {
    expect(show(findCycles(files))).toEqual([]);
  });

  it("has no import circle between folders", () => {
    expect(show(findCycles(folderGraph(files)))).toEqual([]);
  });

  it("keeps protocol/ free of every other folder: the messages depend on nothing of tsserve's", () => {
    const folders = folderGraph(files);
    expect(folders.has("protocol")).toBe(true);
    expect([...folders.get("protocol")!]).toEqual([]);
  });
});

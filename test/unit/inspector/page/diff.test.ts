import { describe, expect, it } from "vitest";
import { diffTokens } from "../../../../src/inspector/page/diff.ts";

describe("the token diff", () => {
  it("joins runs and tells what was removed and added", () => {
    expect(diffTokens(["<s>", "[", "INST", "]", "hi"], ["<s>", "[", "INST", "]", "Be", "brief", "hi"])).toEqual([
      { op: "same", text: "<s>[INST]" },
      { op: "added", text: "Bebrief" },
      { op: "same", text: "hi" },
    ]);
    expect(diffTokens(["a", "b"], ["a", "c"])).toEqual([
      { op: "same", text: "a" },
      { op: "added", text: "c" },
      { op: "removed", text: "b" },
    ]);
  });

  it("gives back both sides: the same and removed parts make the first, the same and added the second", () => {
    const a = ["x", "y", "z", "y"];
    const b = ["y", "x", "z", "z"];
    const parts = diffTokens(a, b);
    expect(
      parts
        .filter((p) => p.op !== "added")
        .map((p) => p.text)
        .join(""),
    ).toBe(a.join(""));
    expect(
      parts
        .filter((p) => p.op !== "removed")
        .map((p) => p.text)
        .join(""),
    ).toBe(b.join(""));
  });
});

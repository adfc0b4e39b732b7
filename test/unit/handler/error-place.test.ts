import { describe, expect, it } from "vitest";
import { describeThrown, errorPlace, mappedStack, parseFrame } from "../../../src/handler/error-place.ts";
import { RequestFailure } from "../../../src/handler/failure.ts";

function thrownWith(stack: string[], name = "TypeError", message = "x is undefined"): Error {
  const error = name === "TypeError" ? new TypeError(message) : new Error(message);
  if (name !== "TypeError") error.name = name;
  error.stack = [`${name}: ${message}`, ...stack.map((line) => `    at ${line}`)].join("\n");
  return error;
}

describe("parseFrame", () => {
  it("reads named, anonymous and async frames, and skips native ones", () => {
    expect(parseFrame("    at Smol.formatPrompt (/p/handlers/smol.ts:14:22)")).toEqual({
      fn: "Smol.formatPrompt",
      file: "/p/handlers/smol.ts",
      line: 14,
      column: 22,
    });
    expect(parseFrame("    at async Smol.preprocess (file:///p/h.mjs:3:4)")).toEqual({
      fn: "Smol.preprocess",
      file: "file:///p/h.mjs",
      line: 3,
      column: 4,
    });
    expect(parseFrame("    at /p/h.mjs:3:4")).toEqual({ file: "/p/h.mjs", line: 3, column: 4 });
    expect(parseFrame("    at Array.map (<anonymous>)")).toBeUndefined();
  });
});

describe("errorPlace", () => {
  it("names the innermost function of the author's code, skipping node_modules and Node's own frames", () => {
    const error = thrownWith([
      "trim (/p/node_modules/lib/index.js:1:2)",
      "node:internal/x:3:4",
      "<anonymous> (/p/handlers/smol.ts:9:5)",
      "Smol.formatPrompt (/p/handlers/smol.ts:14:22)",
      "Smol.preprocess (/p/node_modules/tsserve/src/completions/completion-handler.ts:76:37)",
    ]);
    expect(errorPlace(error)).toEqual({ fn: "formatPrompt", location: "/p/handlers/smol.ts:9:5" });
  });

  it("has no place for a stack with no frame of the author's", () => {
    expect(errorPlace(thrownWith(["f (/p/node_modules/a.js:1:1)"]))).toBeUndefined();
  });
});

describe("describeThrown and RequestFailure.from", () => {
  it("puts the error's type, message and place in the 500's message, and keeps the exception", () => {
    const error = thrownWith([`Smol.formatPrompt (${process.cwd()}/handlers/smol.ts:14:22)`]);
    const failure = RequestFailure.from(error);
    expect(failure.status).toBe(500);
    expect(failure.message).toBe("TypeError: x is undefined (in formatPrompt at handlers/smol.ts:14:22)");
    expect(failure.thrown).toBe(error);
    expect(failure.withBody({}).thrown).toBe(error);
  });

  it("leaves errors from the other side of the bridge as they are", () => {
    expect(describeThrown(thrownWith(["a (/p/src/runtime/remote-model.ts:1:1)"], "RpcError", "engine failed"))).toBe("engine failed");
  });

  it("maps every frame in the stack it prints", () => {
    const error = thrownWith([`Smol.formatPrompt (${process.cwd()}/handlers/smol.ts:14:22)`, "Array.map (<anonymous>)"]);
    expect(mappedStack(error)).toBe(
      "TypeError: x is undefined\n    at Smol.formatPrompt (handlers/smol.ts:14:22)\n    at Array.map (<anonymous>)",
    );
  });
});

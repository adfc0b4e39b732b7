// What tsserve predict tells about a body before it sends it.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { UsageError } from "../../../src/cli/command.ts";
import { checkPredictBody } from "../../../src/cli/commands/predict.ts";

describe("checkPredictBody", () => {
  it("refuses text that is not JSON, saying how to quote it", () => {
    expect(() => checkPredictBody("{prompt: hi}", false)).toThrow(UsageError);
    expect(() => checkPredictBody("{prompt: hi}", false)).toThrow(/not JSON .*--json '\{"prompt": "\.\.\."\}'/);
  });

  it('warns when --stream is given for a body without "stream": true', () => {
    expect(checkPredictBody('{"prompt": "hi"}', true).warning).toMatch(/add "stream": true to the body/);
    expect(checkPredictBody('{"prompt": "hi", "stream": false}', true).warning).toBeDefined();
  });

  it("has nothing to say about a body that matches the flags", () => {
    expect(checkPredictBody('{"prompt": "hi", "stream": true}', true)).toEqual({});
    expect(checkPredictBody('{"prompt": "hi"}', false)).toEqual({});
    expect(checkPredictBody('[{"prompt": "hi"}]', false)).toEqual({});
  });

  it("exits 2 before connecting to anything when the body is not JSON", () => {
    const result = spawnSync(process.execPath, ["bin/tsserve.mjs", "predict", "some-model", "--json", "{prompt: hi}"], {
      encoding: "utf8",
      env: { ...process.env, TSSERVE_CLI_FROM_SOURCES: "1", TSSERVE_WORK_DIR: "/nonexistent/tsserve-work" },
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/^tsserve predict: the request body is not JSON/);
  });
});

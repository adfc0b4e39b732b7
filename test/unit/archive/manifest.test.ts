import { describe, expect, it } from "vitest";
import { ARCHIVER_VERSION, formatCreatedOn, pythonJsonDumps, renderManifest } from "../../../src/archive/manifest.ts";
import { python } from "./helpers.ts";

describe("manifest", () => {
  it("formats createdOn as DD/MM/YYYY HH:MM:SS in local time", () => {
    expect(formatCreatedOn(new Date(2024, 0, 5, 7, 8, 9))).toBe("05/01/2024 07:08:09");
    expect(formatCreatedOn(new Date(2023, 11, 31, 23, 59, 58))).toBe("31/12/2023 23:59:58");
  });

  it("writes torch-model-archiver's keys in its order and leaves unset ones out", () => {
    const text = renderManifest(
      { modelName: "m", handler: "h.py", modelVersion: "1.0", configFile: "c.yaml" },
      new Date(2024, 1, 3, 4, 5, 6),
    );
    expect(text).toBe(
      [
        "{",
        '  "createdOn": "03/02/2024 04:05:06",',
        '  "runtime": "python",',
        '  "model": {',
        '    "modelName": "m",',
        '    "handler": "h.py",',
        '    "modelVersion": "1.0",',
        '    "configFile": "c.yaml"',
        "  },",
        `  "archiverVersion": "${ARCHIVER_VERSION}"`,
        "}",
      ].join("\n"),
    );
    const withReq = JSON.parse(
      renderManifest({ modelName: "m", handler: "h.py", modelVersion: "1", requirementsFile: "r.txt", configFile: "c.yaml" }),
    );
    expect(Object.keys(withReq.model)).toEqual(["modelName", "handler", "modelVersion", "requirementsFile", "configFile"]);
  });

  it("escapes like Python's json.dumps(indent=2) with ensure_ascii", () => {
    const value = { a: 'caf\u00e9 \u{1F600} \u007f tab\t nl\n quote" back\\', b: [1, { c: null }], d: {}, e: [] };
    const expected = python("import json,sys; print(json.dumps(json.loads(sys.argv[1]), indent=2), end='')", [JSON.stringify(value)]);
    expect(pythonJsonDumps(value)).toBe(expected);
  });
});

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { renderShimHandler, shimClassName } from "../../../src/archive/shim.ts";
import { ROOT, python, tempDir } from "./helpers.ts";

describe("generated shim module", () => {
  it("derives a Python class name from the model name", () => {
    expect(shimClassName("tiny-llama-2-chat")).toBe("TinyLlama2ChatHandler");
    expect(shimClassName("vicuna_13b.v1")).toBe("Vicuna13bV1Handler");
    expect(shimClassName("7b")).toBe("Model7bHandler");
  });

  it("defines exactly one class, a TsserveHandler, and no module-level handle (as TorchServe's loader requires)", () => {
    const dir = tempDir();
    fs.writeFileSync(
      path.join(dir, "tsserve_handler.py"),
      renderShimHandler({ modelName: "tiny-llama-2-chat", handlerSource: "llama-2-7b-chat.ts" }),
    );
    const out = python(
      [
        "import json, tsserve_handler",
        "from ts.utils.util import list_classes_from_module",
        "from tsserve_shim.handler import TsserveHandler",
        "classes = list_classes_from_module(tsserve_handler)",
        "print(json.dumps({'n': len(classes), 'name': classes[0].__name__, 'sub': issubclass(classes[0], TsserveHandler),",
        "  'bundle': classes[0].bundle_file, 'handle_fn': hasattr(tsserve_handler, 'handle')}))",
      ].join("\n"),
      [],
      { PYTHONPATH: [dir, path.join(ROOT, "python_shim")].join(path.delimiter) },
    );
    expect(JSON.parse(out)).toEqual({ n: 1, name: "TinyLlama2ChatHandler", sub: true, bundle: "handler.mjs", handle_fn: false });
  });
});

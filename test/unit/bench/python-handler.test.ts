// The benchmark's Python baseline (bench/python_handler.py) must send the model
// exactly the prompt handlers/llama-2-7b-chat.ts sends, or the e2e comparison
// would compare different work: byte equality against `tsserve render`.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const PYTHON = path.join(ROOT, ".venv", "bin", "python");
const PROMPTS = [
  "Alan Turing was a ",
  "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 2 + 2?\n<|im_end|>\n<|im_start|>assistant\n",
  "<|im_start|>userhi<|im_end|><|im_start|>assistant",
  "trailing python whitespace \u001c\u0085\u00a0\u3000\t\n ",
  "keeps \ufeff a BOM-like char and ünïcödé 😀",
  "",
];

describe.skipIf(!fs.existsSync(PYTHON))("bench/python_handler.py", () => {
  it("formats each prompt byte for byte as tsserve render does", () => {
    const request = JSON.stringify(PROMPTS.map((prompt) => ({ prompt, max_tokens: 4, temperature: 0 })));
    const rendered = execFileSync(
      process.execPath,
      [path.join(ROOT, "bin", "tsserve.mjs"), "render", "--handler", "handlers/llama-2-7b-chat.ts", "--request", "-"],
      {
        cwd: ROOT,
        input: request,
        encoding: "utf8",
      },
    );
    const script = [
      "import importlib.util, json, sys",
      "spec = importlib.util.spec_from_file_location('python_handler', 'bench/python_handler.py')",
      "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)",
      "bodies = json.loads(sys.stdin.read())",
      "sys.stdout.write(json.dumps({'prompts': [module.generate_request(b)['prompt'] for b in bodies]}))",
    ].join("\n");
    const python = execFileSync(PYTHON, ["-c", script], { cwd: ROOT, input: request, encoding: "utf8" });
    const expected = (JSON.parse(rendered) as { prompts: string[] }).prompts;
    expect(expected).toHaveLength(PROMPTS.length);
    expect(Buffer.from(JSON.stringify((JSON.parse(python) as { prompts: string[] }).prompts))).toEqual(
      Buffer.from(JSON.stringify(expected)),
    );
  }, 60_000);
});

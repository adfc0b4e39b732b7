/**
 * `tsserve render`: node bin/tsserve.mjs as a child process where the process is the point (stdout holds
 * exactly one JSON object, stdin, a thrown error's TypeScript stack, a usage error), else the same entry
 * (runMain) in this process, which saves a Node and tsx start-up per case.
 * Expected chat prompts come from the golden fixtures (transformers / FastChat).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { runMain } from "../../../src/cli/main.ts";
import SEED_EXAMPLE from "../../fixtures/seed-request.json" with { type: "json" };

const ROOT = path.resolve(import.meta.dirname, "../../..");
const tmp = mkdtempSync(path.join(tmpdir(), "tsserve-render-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function render(args: string[], stdin?: string) {
  const result = spawnSync(process.execPath, ["bin/tsserve.mjs", "render", ...args], {
    cwd: ROOT,
    input: stdin,
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}
/** `tsserve render ARGS` through runMain in this process: its exit code and what it wrote. */
async function renderHere(args: string[]) {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const capture = (into: string[]) => (chunk: string | Uint8Array) => {
    into.push(String(chunk));
    return true;
  };
  const out = vi.spyOn(process.stdout, "write").mockImplementation(capture(stdout) as typeof process.stdout.write);
  const err = vi.spyOn(process.stderr, "write").mockImplementation(capture(stderr) as typeof process.stderr.write);
  const exitCode = process.exitCode;
  process.exitCode = undefined;
  try {
    await runMain(["render", ...args.map((arg, i) => (["--handler", "--config"].includes(args[i - 1]!) ? path.resolve(ROOT, arg) : arg))]);
    return { code: process.exitCode ?? 0, stdout: stdout.join(""), stderr: stderr.join("") };
  } finally {
    out.mockRestore();
    err.mockRestore();
    process.exitCode = exitCode;
  }
}
let n = 0;
function requestFile(body: unknown): string {
  const file = path.join(tmp, `request-${n++}.json`);
  writeFileSync(file, JSON.stringify(body));
  return file;
}

const golden = (file: string, name: string) =>
  (
    JSON.parse(readFileSync(path.join(ROOT, "test/fixtures/prompts", file), "utf8")) as {
      cases: { name: string; messages: unknown[]; expected: string }[];
    }
  ).cases.find((c) => c.name === name)!;

const SHIPPED = [
  ["llama-2-7b-chat", "[INST] <<SYS>>\n\n<</SYS>>\n\nAlan Turing was a", "llama-2-chat.json"],
  ["llama-2-13b-chat", "[INST] <<SYS>>\n\n<</SYS>>\n\nAlan Turing was a", "llama-2-chat.json"],
  ["llama-2-70b-chat", "[INST] <<SYS>>\n\n<</SYS>>\n\nAlan Turing was a", "llama-2-chat.json"],
  ["vicuna-13b", "Alan Turing was a", "vicuna-v1.1.json"],
] as const;

describe("tsserve render with the shipped handlers", () => {
  for (const [name, seedPrompt, chatFixture] of SHIPPED) {
    it(`${name}: prints the seed example's prompt as exactly one JSON object`, async () => {
      const args = ["--handler", `handlers/${name}.ts`, "--request", requestFile(SEED_EXAMPLE), "--config", `configs/${name}.yaml`];
      const r = name === "llama-2-7b-chat" ? render(args) : await renderHere(args);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ prompts: [seedPrompt] });
      expect(r.stdout.trim().split("\n")).toHaveLength(1);
    });

    it(`${name}: renders a multi-turn chat as the reference renderer does`, async () => {
      const c = golden(chatFixture, "multi-turn with system");
      const r = await renderHere(["--handler", `handlers/${name}.ts`, "--request", requestFile({ messages: c.messages, max_tokens: 64 })]);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ prompts: [c.expected] });
    });
  }

  it("reads the request from stdin with --request -", () => {
    const r = render(["--handler", "handlers/vicuna-13b.ts", "--request", "-"], JSON.stringify({ prompt: "hi there  " }));
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ prompts: ["hi there"] });
  });

  it("renders a batch (a JSON array) in order", async () => {
    const r = await renderHere(["--handler", "handlers/vicuna-13b.ts", "--request", requestFile([{ prompt: "one" }, { prompt: "two" }])]);
    expect(JSON.parse(r.stdout)).toEqual({ prompts: ["one", "two"] });
  });

  it("renders with the tiny model's config, whose relative model_path resolves against the config file", async () => {
    const r = await renderHere([
      "--handler",
      "handlers/llama-2-7b-chat.ts",
      "--request",
      requestFile(SEED_EXAMPLE),
      "--config",
      "configs/tiny-llama-2-chat.yaml",
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ prompts: ["[INST] <<SYS>>\n\n<</SYS>>\n\nAlan Turing was a"] });
  });
});

describe("tsserve render refusals exit 2 and name the field or rule on stderr", () => {
  const BAD: [string, unknown, RegExp][] = [
    [
      "roles not alternating",
      {
        messages: [
          { role: "user", content: "a" },
          { role: "user", content: "b" },
        ],
      },
      /messages\.1\.role: .*alternate/,
    ],
    ["neither prompt nor messages", { max_tokens: 5 }, /prompt: required/],
    ["a negative max_tokens", { prompt: "x", max_tokens: -1 }, /max_tokens: must be ≥ 0/],
    ["a wrong type", { prompt: "x", temperature: "hot" }, /temperature: must be a finite number/],
    ["an unknown role", { messages: [{ role: "robot", content: "a" }] }, /messages\.0\.role: must be one of/],
    ["n > 1 at temperature 0", { prompt: "x", n: 2, temperature: 0 }, /n: must be 1 when temperature is 0/],
    ["a body that is not an object", "just a string", /body: must be a JSON object/],
  ];
  for (const [description, body, pattern] of BAD) {
    it(`refuses ${description}`, async () => {
      const r = await renderHere(["--handler", "handlers/llama-2-7b-chat.ts", "--request", requestFile(body)]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(pattern);
    });
  }

  it("exits 2 when a request file is not JSON", async () => {
    const file = path.join(tmp, "bad.json");
    writeFileSync(file, "{not json");
    const r = await renderHere(["--handler", "handlers/vicuna-13b.ts", "--request", file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not JSON/);
  });

  it("exits 2 when the config fails the handler's schema, naming the key", async () => {
    const file = path.join(tmp, "bad.yaml");
    writeFileSync(file, "handler:\n  model_path: /x\n  quantize: int3\n");
    const r = await renderHere(["--handler", "handlers/vicuna-13b.ts", "--request", requestFile({ prompt: "x" }), "--config", file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/handler\.quantize/);
  });

  it("exits 2 without --handler", () => {
    const r = render(["--request", requestFile({ prompt: "x" })]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--handler/);
  });
});

const SMOL = path.join(ROOT, ".cache", "smollm2-135m-instruct");
describe.skipIf(!existsSync(path.join(SMOL, "chat_template.jinja")))(
  "tsserve render with SmolLM2's own chat template (chat_template.jinja)",
  () => {
    it("renders messages as transformers' apply_chat_template does with that tokenizer", () => {
      const messages = [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello." },
        { role: "user", content: "Bye" },
      ];
      const r = render([
        "--handler",
        "handlers/smollm2-135m-instruct.ts",
        "--config",
        "configs/smollm2-135m-instruct.yaml",
        "--request",
        requestFile({ messages }),
      ]);
      expect(r.code).toBe(0);
      const reference = spawnSync(
        path.join(ROOT, ".venv/bin/python"),
        [
          "-c",
          "import json, sys\nfrom transformers import AutoTokenizer\n" +
            "t = AutoTokenizer.from_pretrained(sys.argv[1])\n" +
            "print(json.dumps(t.apply_chat_template(json.loads(sys.argv[2]), tokenize=False, add_generation_prompt=True)))",
          SMOL,
          JSON.stringify(messages),
        ],
        { encoding: "utf8", timeout: 120_000 },
      );
      expect(reference.status, reference.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ prompts: [JSON.parse(reference.stdout)] });
    }, 180_000);
  },
);

describe("tsserve render with a handler that throws", () => {
  it("exits 1 naming formatPrompt and the .ts file:line, and prints the TypeScript stack", () => {
    const { code, stdout, stderr } = render([
      "--handler",
      "test/fixtures/handlers/throwing-handler.ts",
      "--request",
      requestFile({ prompt: "hi" }),
    ]);
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expect(stderr).toMatch(
      /failed \(500\): TypeError: Cannot read properties of undefined \(reading 'length'\) \(in formatPrompt at test\/fixtures\/handlers\/throwing-handler\.ts:11:\d+\)/,
    );
    expect(stderr).toMatch(/at ThrowingHandler\.formatPrompt \(test\/fixtures\/handlers\/throwing-handler\.ts:11:\d+\)/);
  });
});

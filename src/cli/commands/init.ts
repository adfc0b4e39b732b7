/**
 * `tsserve init <model-name>`: scaffold a handler, its model config and its
 * vitest test in the current project. Never overwrites a file.
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { MODEL_NAME_PATTERN } from "../../archive/manifest.ts";
import { UsageError, type Command } from "../command.ts";

const USAGE = `Usage: tsserve init <model-name>

Writes handlers/<model-name>.ts, configs/<model-name>.yaml and
test/unit/handlers/<model-name>.test.ts in the current folder, and refuses to
overwrite any of them; and a tsconfig.json (strict) that type-checks them,
when the folder has none. <model-name> is what TorchServe will call the model:
letters, digits, "-", "_" and ".", starting with a letter or digit.`;

/** `llama-2-7b-chat` -> `Llama27bChat`; a leading digit gets a `Model` prefix. */
export function className(modelName: string): string {
  const name = modelName
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((part) => part[0]!.toUpperCase() + part.slice(1))
    .join("");
  return /^[0-9]/.test(name) ? `Model${name}` : name;
}

/** Inside the tsserve repository itself, handlers import the sources; elsewhere, the package. */
function importPaths(root: string): { api: string; testing: string } {
  try {
    const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { name?: string };
    if (pkg.name === "tsserve") return { api: "../src/index.ts", testing: "../../../src/testing/index.ts" };
  } catch {
    // No package.json: a plain folder using the installed package.
  }
  return { api: "tsserve", testing: "tsserve/testing" };
}

function scaffold(modelName: string, imports: { api: string; testing: string }): Record<string, string> {
  const cls = className(modelName);
  return {
    [`handlers/${modelName}.ts`]: `// The ${modelName} handler. \`formatPrompt\` turns a request into the model's
// prompt; CompletionHandler does the rest (validation, one batched generate,
// n/best_of/echo/logprobs/stream, the response body). Override its methods
// (preprocess, inference, postprocess, responseBody, streamChunk) to change more.
import { CompletionHandler, RequestFailure, renderChatTemplate, type CompletionRequest, type StageContext } from "${imports.api}";

export default class ${cls} extends CompletionHandler {
  override formatPrompt(request: CompletionRequest, ctx: StageContext): string {
    if (request.prompt !== undefined) return request.prompt;
    // Chat requests: the model's own chat template (from its tokenizer_config.json).
    const template = ctx.model.info.chat_template;
    if (!template) throw RequestFailure.badRequest("messages: this model has no chat template; send a prompt", "messages");
    return renderChatTemplate(template, request.messages!, {
      bosToken: ctx.model.info.bos_token,
      eosToken: ctx.model.info.eos_token,
    });
  }
}
`,
    [`configs/${modelName}.yaml`]: `# TorchServe model config for ${modelName}. The handler: section is checked
# against the handler's config schema by \`tsserve archive\` and at load time.
# A relative model_path resolves against this file's folder.
minWorkers: 1
maxWorkers: 1
batchSize: 1
maxBatchDelay: 50
# Continuous batching: each request joins the running batch at the next decode step.
asyncCommunication: true
responseTimeout: 600
# vLLM compiles the model at load (torch.compile, CUDA graphs): minutes, beyond TorchServe's default 120 s.
startupTimeout: 600
handler:
  model_path: "/path/to/model/checkpoint"
  engine: "vllm"         # vllm (serving) | transformers (reference: bitsandbytes on CPU, GGUF)
  dtype: "auto"          # auto | float16 | bfloat16 | float32
  quantize: "none"       # none | int8 | fp4 | nf4 (vllm: nf4 on CUDA only)
  num_gpu_per_model: 1
  # gpu_max_memory: 4.8e10  # bytes per GPU, or "48GiB"
`,
    [`test/unit/handlers/${modelName}.test.ts`]: `import { describe, expect, it } from "vitest";
import { FakeModel, runHandler } from "${imports.testing}";
import Handler from "../../../handlers/${modelName}.ts";

describe("${modelName} handler", () => {
  it("passes a raw prompt to the model unchanged", async () => {
    const model = new FakeModel({ respond: () => "a mathematician." });
    const { outcomes } = await runHandler(new Handler(), [{ prompt: "Alan Turing was", max_tokens: 32 }], { model });
    expect(model.prompts).toEqual(["Alan Turing was"]);
    expect(outcomes[0]).toMatchObject({ ok: true, body: { choices: [{ text: "a mathematician.", index: 0 }] } });
  });

  it("renders messages with the model's chat template", async () => {
    const model = new FakeModel({
      info: { chat_template: "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}" },
    });
    await runHandler(new Handler(), [{ messages: [{ role: "user", content: "Hi" }] }], { model });
    expect(model.prompts).toEqual(["<user>Hi<assistant>"]);
  });

  it("refuses a request without prompt or messages, naming the field", async () => {
    const { outcomes } = await runHandler(new Handler(), [{ max_tokens: 8 }]);
    expect(outcomes[0]).toMatchObject({ ok: false, status: 400, field: "prompt" });
  });
});
`,
  };
}

/** A tsconfig.json under which the scaffold type-checks with `npx tsc` (strict; .ts extensions in imports, as the scaffold writes them). */
const SCAFFOLD_TSCONFIG = `${JSON.stringify(
  {
    compilerOptions: {
      target: "ES2022",
      module: "NodeNext",
      moduleResolution: "NodeNext",
      strict: true,
      allowImportingTsExtensions: true,
      noEmit: true,
      esModuleInterop: true,
      skipLibCheck: true,
    },
    include: ["handlers", "test"],
  },
  null,
  2,
)}\n`;

const init: Command = {
  name: "init",
  summary: "scaffold a handler, its model config and its test",
  usage: USAGE,
  options: {},
  positionals: true,
  async run({ positionals }) {
    if (positionals.length !== 1) throw new UsageError("expected exactly one <model-name>");
    const modelName = positionals[0]!;
    if (!MODEL_NAME_PATTERN.test(modelName)) {
      throw new UsageError(`"${modelName}" is not a valid model name (letters, digits, "-", "_", ".", starting with a letter or digit)`);
    }
    const root = process.cwd();
    const files = scaffold(modelName, importPaths(root));
    const existing = Object.keys(files).filter((file) => existsSync(path.join(root, file)));
    if (existing.length > 0) throw new UsageError(`refusing to overwrite ${existing.join(", ")}`);
    for (const [file, text] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(root, file)), { recursive: true });
      await writeFile(path.join(root, file), text, { flag: "wx" });
      process.stdout.write(`created ${file}\n`);
    }
    if (!existsSync(path.join(root, "tsconfig.json"))) {
      await writeFile(path.join(root, "tsconfig.json"), SCAFFOLD_TSCONFIG, { flag: "wx" });
      process.stdout.write("created tsconfig.json\n");
    }
    return 0;
  },
};

export default init;

// Quantized models on a real TorchServe 0.12 (issue 14): the seed's Llama-2-70b
// settings (torchrun nproc-per-node 1, quantize nf4, one GPU per model at
// 4.8e10) on the tiny model and a CPU worker, and the same with int8, are
// archived, registered and answer; each greedy completion equals what
// transformers and bitsandbytes alone produce (test/e2e/reference/bnb_reference.py).
// `tsserve archive` refuses a GPU layout TorchServe cannot give a worker.
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import type { TorchServeClient } from "../../src/client/http.ts";
import { ROOT, cli, writeFile } from "./helpers.ts";
import { sharedModel, sharedServer, type RunningServer } from "./servers.ts";

const RAW_HANDLER = path.join(ROOT, "handlers", "llama-2-7b.ts"); // the prompt reaches the model unchanged
const TINY_MODEL = path.join(ROOT, ".cache", "tiny-llama");
const SETTINGS = ["nf4", "int8"] as const;
const CASES = [
  { prompt: "Alan Turing was a", max_tokens: 12 },
  { prompt: "Q: What is the capital of France?\nA:", max_tokens: 8 },
];

type Reference = { layer: string; cases: { token_count: number; text: string; finish_reason: string }[] };

let srv: RunningServer;
let client: TorchServeClient;
let references: Record<string, Reference>;

/** The seed's 70b config with the tiny model on a CPU worker. */
function seedConfig(file: string, quantize: string, extra = ""): string {
  return writeFile(
    file,
    [
      "minWorkers: 1",
      "maxWorkers: 1",
      "batchSize: 1",
      "responseTimeout: 120",
      "deviceType: cpu",
      "torchrun:",
      "  nproc-per-node: 1",
      extra,
      "handler:",
      `  model_path: "${TINY_MODEL}"`,
      `  quantize: "${quantize}"`,
      "  num_gpu_per_model: 1",
      "  gpu_max_memory: 4.8e10",
      "  cpu_threads: 1",
      "",
    ].join("\n"),
  );
}

function reference(quantize: readonly string[]): Promise<Record<string, Reference>> {
  return new Promise((resolve, reject) => {
    const script = path.join(ROOT, "test", "e2e", "reference", "bnb_reference.py");
    const child = execFile(
      path.join(ROOT, ".venv", "bin", "python"),
      [script],
      { env: { ...process.env, TQDM_DISABLE: "1" } },
      (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(JSON.parse(stdout))),
    );
    child.stdin!.end(JSON.stringify({ model_path: TINY_MODEL, quantize, cases: CASES }));
  });
}

beforeAll(async () => {
  const computed = reference(SETTINGS); // beside the models' load: mostly waiting on imports
  computed.catch(() => {}); // awaited below; a failure must not surface early as an unhandled rejection
  srv = await sharedServer("transformers");
  client = srv.client;
  await Promise.all(
    SETTINGS.map((q) =>
      sharedModel(srv, { name: `tiny-${q}`, handler: RAW_HANDLER, configFile: seedConfig(path.join(srv.scratch, `${q}.yaml`), q) }),
    ),
  );
  references = await computed;
}, 300_000);

describe.each(SETTINGS)("quantize: %s on a CPU worker", (q) => {
  it("answers each prompt with the completion transformers and bitsandbytes give on their own", async () => {
    const ref = references[q]!;
    expect(ref.layer).toBe(q === "int8" ? "Linear8bitLt" : "Linear4bit");
    for (const [i, c] of CASES.entries()) {
      const reply = await client.predict(`tiny-${q}`, JSON.stringify({ ...c, temperature: 0, logprobs: 1 }));
      expect(reply.status, reply.body).toBe(200);
      const [choice] = (JSON.parse(reply.body) as { choices: { text: string; finish_reason: string; logprobs: { tokens: string[] } }[] })
        .choices;
      expect(choice!.text).toBe(ref.cases[i]!.text);
      expect(choice!.finish_reason).toBe(ref.cases[i]!.finish_reason);
      expect(choice!.logprobs.tokens).toHaveLength(ref.cases[i]!.token_count);
    }
  });

  it("loaded the model quantized, and said once why a quantized CPU model is slow", () => {
    const log = fs.readFileSync(path.join(srv.paths.logs, "model_log.log"), "utf8");
    expect(log).toContain(`quantize ${q})`);
    expect(log.split(`quantize: ${q} on CPU runs bitsandbytes`).length - 1).toBe(1);
  });
});

describe("tsserve archive", () => {
  it("refuses a GPU layout TorchServe cannot give a worker, with the reason and the fix", async () => {
    const config = seedConfig(path.join(srv.scratch, "custom.yaml"), "nf4", "parallelType: custom");
    fs.writeFileSync(config, fs.readFileSync(config, "utf8").replace("num_gpu_per_model: 1", "num_gpu_per_model: 2"));
    const out = await cli([
      "archive",
      "--model-name",
      "refused",
      "--version",
      "1.0",
      "--handler",
      RAW_HANDLER,
      "--config-file",
      config,
      "--export-path",
      srv.scratch,
    ]);
    expect(out.code).not.toBe(0);
    expect(out.stderr).toMatch(
      /torchrun\.nproc-per-node.*exactly 1 GPU\(s\).*num_gpu_per_model is 2 \(no worker could be placed\): set torchrun nproc-per-node: 2/s,
    );
    expect(fs.existsSync(path.join(srv.scratch, "refused.mar"))).toBe(false);
  });
});

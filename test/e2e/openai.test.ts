// Issue 15: the OpenAI-compatible routes on a real TorchServe 0.12, with the
// real SmolLM2-135M-Instruct, proven with real clients: the `openai` Python SDK
// (completions and chat, streamed and not, n > 1, logprobs, errors, models;
// every typed object re-validated) and lm-evaluation-harness's
// `local-completions` (loglikelihood and generate_until), whose
// log-likelihoods must equal a separate transformers forward pass. Both run in
// one Python process (test/e2e/openai_clients.py). Token authorization stays
// on: the SDK's api_key is the inference key.
//
// One TorchServe, one model, its own working folder (.work/e2e-openai) and
// ports (TSSERVE_E2E_PORT_BASE).
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createArchive } from "../../src/archive/archive.ts";
import { readKeyFile } from "../../src/client/keys.ts";
import { connect, registerWatched, runningServer, startServer, stopServer } from "../../src/client/server.ts";
import { ROOT, isolatedServer, leftovers, writeFile, type IsolatedServer } from "./helpers.ts";

const MODEL = "smollm2";
const VERSION = "1.0";
const HANDLER = path.join(ROOT, "handlers", "smollm2-135m-instruct.ts");
const CONFIG = path.join(ROOT, "configs", "smollm2-135m-instruct.yaml");
const MODEL_PATH = path.join(ROOT, ".cache", "smollm2-135m-instruct");
const PYTHON = path.join(ROOT, ".venv", "bin", "python");
/** Log-likelihoods through TorchServe and from the separate forward pass agree to this (float32 on CPU). */
const LOGLIKELIHOOD_TOLERANCE = 1e-3;

let srv: IsolatedServer;
let key: string | undefined;
let predictions: string;
let base: string;

/** transformers' own answers to the lm-eval requests: computed while TorchServe starts. */
let reference: Promise<ReferenceReport>;

beforeAll(async () => {
  reference = runPython<ReferenceReport>(["reference", MODEL_PATH]);
  reference.catch(() => {}); // awaited by the last test
  srv = isolatedServer("openai");
  if (runningServer(srv.paths)) await stopServer({ paths: srv.paths });
  // One torch thread: on a busy 2-core machine two OpenMP threads spin against each other (6x slower).
  const yaml = fs.readFileSync(CONFIG, "utf8").replace(/model_path: .*/, `model_path: "${MODEL_PATH}"\n  cpu_threads: 1`);
  const configFile = writeFile(path.join(srv.scratch, `${MODEL}.yaml`), yaml);
  await createArchive({ modelName: MODEL, version: VERSION, handler: HANDLER, configFile, exportPath: srv.modelStore });
  await startServer({ paths: srv.paths, tsConfig: srv.tsConfig, modelStore: srv.modelStore });
  const client = connect(srv.paths);
  await registerWatched(client, { url: `${MODEL}.mar`, modelName: MODEL, initialWorkers: 1 }, srv.paths);
  key = readKeyFile(srv.paths.keyFile)!.inference.key;
  predictions = `http://127.0.0.1:${srv.ports.inference}/predictions/${MODEL}`;
  base = `${predictions}/${VERSION}/v1`;
}, 300_000);

afterAll(async () => {
  if (srv && runningServer(srv.paths)) await stopServer({ paths: srv.paths });
  if (srv) expect(leftovers(srv.paths)).toEqual([]);
}, 120_000);

const post = (url: string, body: unknown, headers: Record<string, string> = { Authorization: `Bearer ${key}` }) =>
  fetch(url, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });

interface Answers {
  loglikelihood: [number, boolean][];
  generate_until: string[];
}
interface ClientsReport {
  sdk: Record<string, any>;
  lm_eval: Answers;
  seconds: number;
}
type ReferenceReport = Answers & { seconds: number };

/** Runs one mode of openai_clients.py and resolves with its report. */
function runPython<T>(args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const env = {
      ...process.env, OPENAI_API_KEY: key ?? "", HF_HUB_OFFLINE: "1", HF_DATASETS_OFFLINE: "1", TRANSFORMERS_OFFLINE: "1",
      TOKENIZERS_PARALLELISM: "false", OMP_NUM_THREADS: "1",
    };
    const child = spawn(PYTHON, [path.join(ROOT, "test", "e2e", "openai_clients.py"), ...args], { cwd: ROOT, env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    const timer = setTimeout(() => child.kill("SIGKILL"), 240_000);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      const line = stdout.split("\n").find((l) => l.startsWith("REPORT "));
      if (code !== 0 || !line) reject(new Error(`openai_clients.py ${args[0]} exited ${code}\n${stderr.slice(-4000)}`));
      else resolve(JSON.parse(line.slice("REPORT ".length)) as T);
    });
  });
}

describe("OpenAI routes through TorchServe's sub-paths", () => {
  it("serves the model's own body at /predictions/<model> exactly as before", async () => {
    const response = await post(predictions, { prompt: "The capital of France is", max_tokens: 3, temperature: 0 });
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(Object.keys(body).sort()).toEqual(["choices", "created", "id", "model", "object", "raw_compute_time", "usage"]);
    expect(body.choices[0].logprobs.tokens.length).toBe(3);
  });

  it("answers GET v1/models", async () => {
    const response = await fetch(`${base}/models`, { headers: { Authorization: `Bearer ${key}` } });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ object: "list", data: [{ id: MODEL, object: "model", owned_by: "tsserve" }] });
  });

  it("streams chat as server-sent events ending with data: [DONE]", async () => {
    const response = await post(`${base}/chat/completions`, {
      messages: [{ role: "user", content: "Hi" }], max_tokens: 4, temperature: 0, stream: true, stream_options: { include_usage: true },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    const text = await response.text();
    const events = text.split("\n\n").filter(Boolean);
    expect(events.every((e) => e.startsWith("data: "))).toBe(true);
    expect(events.at(-1)).toBe("data: [DONE]");
    const usage = JSON.parse(events.at(-2)!.slice(6));
    expect(usage).toMatchObject({ object: "chat.completion.chunk", choices: [] });
    expect(usage.usage.completion_tokens).toBeGreaterThan(0);
  });

  it("refuses bad input in OpenAI's error shape, naming the field, and answers unknown paths with 404", async () => {
    const notJson = await post(`${base}/completions`, "{\"prompt\": ");
    expect(notJson.status).toBe(400);
    expect((await notJson.json()).error).toMatchObject({ type: "invalid_request_error", param: "body" });
    const tokens = await post(`${base}/completions`, { prompt: [1, 2, 3] });
    expect(tokens.status).toBe(400);
    expect((await tokens.json()).error).toMatchObject({ param: "prompt", message: expect.stringContaining("token-id prompts are not supported") });
    const unknown = await post(`${base}/embeddings`, { input: "x" });
    expect(unknown.status).toBe(404);
    expect((await unknown.json()).error).toMatchObject({ type: "not_found_error", param: "url_path", message: expect.stringContaining('"v1/embeddings"') });
  });

  it("keeps token authorization on for the OpenAI routes", async () => {
    const response = await post(`${base}/completions`, { prompt: "Hi", max_tokens: 1 }, {});
    expect(response.ok).toBe(false);
    expect([400, 401]).toContain(response.status);
  });

  it("answers the openai SDK and lm-evaluation-harness; log-likelihoods equal a separate forward pass", async () => {
    const { sdk, lm_eval: lm, seconds } = await runPython<ClientsReport>(["clients", base, MODEL, MODEL_PATH]);
    const ref = await reference;
    console.log(`clients ${seconds} s, reference ${ref.seconds} s (while TorchServe started)`);

    expect(sdk.models).toEqual([MODEL]);
    const c = sdk.completion;
    expect(c.indices).toEqual([0, 1, 2, 3]);
    expect(c.tokens_join).toEqual(c.texts);
    for (const sizes of c.top_sizes) for (const size of sizes) expect(size === 1 || size === 2).toBe(true);
    expect(c.usage.completion_tokens).toBe(c.logprob_lengths.reduce((a: number, b: number) => a + b, 0));
    expect(sdk.echo).toMatchObject({ text: "The capital of France is", first_logprob: null });

    // Seeded sampling gives the same choices streamed or not, alone or next to another prompt.
    expect(sdk.completion_stream.texts).toEqual(c.texts.slice(0, 2));
    expect(sdk.completion_stream.last_choices).toBe(0);
    expect(sdk.completion_stream.usage.completion_tokens).toBeGreaterThan(0);

    expect(sdk.chat.object).toBe("chat.completion");
    expect(sdk.chat.roles).toEqual(["assistant", "assistant"]);
    expect(sdk.chat.logprob_tokens_join).toEqual(sdk.chat.texts);
    expect(sdk.chat.bytes_ok).toBe(true);
    expect(sdk.chat_stream.first_role).toBe("assistant");
    expect(sdk.chat_stream.text).toBe(sdk.chat_stream.unstreamed_text);
    expect(sdk.chat_stream.usage).toEqual(sdk.chat_stream.unstreamed_usage);

    expect(sdk.errors.max_tokens).toMatchObject({ class: "BadRequestError", status: 400, param: "max_tokens", type: "invalid_request_error" });
    expect(sdk.errors.top_logprobs).toMatchObject({ class: "BadRequestError", status: 400, param: "top_logprobs" });
    expect(sdk.errors.messages).toMatchObject({ class: "BadRequestError", status: 400, param: "messages.0.role" });
    expect(sdk.errors.embeddings).toMatchObject({ class: "NotFoundError", status: 404 });

    const differences = lm.loglikelihood.map(([ll], i) => Math.abs(ll - ref.loglikelihood[i]![0]));
    console.log(`lm_eval vs forward pass: max |loglikelihood difference| = ${Math.max(...differences).toExponential(2)}`);
    expect(Math.max(...differences)).toBeLessThan(LOGLIKELIHOOD_TOLERANCE);
    expect(lm.loglikelihood.map(([, greedy]) => greedy)).toEqual(ref.loglikelihood.map(([, greedy]) => greedy));
    // The continuation " Paris" is far likelier than " a banana": the numbers mean something.
    expect(lm.loglikelihood[0]![0]).toBeGreaterThan(lm.loglikelihood[1]![0]);
    expect(lm.generate_until).toEqual(ref.generate_until);
    expect(lm.generate_until.some((text) => text.trim().length > 0)).toBe(true);

    // Every refusal above left the worker serving.
    expect((await post(`${base}/completions`, { prompt: "Hi", max_tokens: 1 })).status).toBe(200);
  }, 300_000);
});

// Issues 15 and 22: the OpenAI-compatible routes on a real TorchServe 0.12,
// with the real SmolLM2-135M-Instruct, proven with real clients: the `openai`
// Python SDK (completions and chat, streamed and not, n > 1, logprobs, errors,
// models, prompts as token ids, the tokenizer routes; every typed object
// re-validated) and lm-evaluation-harness's own evaluator on two small local
// tasks (test/fixtures/lm-eval: multiple choice by log-likelihood, and
// generate_until) three ways: `local-completions` with lm-eval's defaults
// (token-id requests, its tokenizer found on the server), with text requests,
// and `local-chat-completions` with the chat template. Each is held to
// lm-eval's `hf` model run in process (the reference): log-likelihoods within
// 1e-3, generations and metrics equal. The clients run in one Python process
// (test/e2e/openai_clients.py), the reference in another while TorchServe
// starts. Token authorization stays on: the SDK's api_key is the inference key.
//
// The run's shared vLLM TorchServe and its SmolLM2 model (servers.ts).
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { readKeyFile } from "../../src/client/keys.ts";
import { ROOT, runPythonReport } from "./helpers.ts";
import { SMOLLM2_VLLM, smollm2OnVllm, type RunningServer } from "./servers.ts";

const MODEL = SMOLLM2_VLLM;
const VERSION = "1.0";
const MODEL_PATH = path.join(ROOT, ".cache", "smollm2-135m-instruct");
/** Log-likelihoods through TorchServe and from lm-eval's in-process `hf` model agree to this (float32 on CPU). */
const LOGLIKELIHOOD_TOLERANCE = 1e-3;
const MC_TASK = "tsserve_capitals_mc";
const GEN_TASK = "tsserve_capitals_gen";

let srv: RunningServer;
let key: string | undefined;
let predictions: string;
let base: string;

/** lm-eval's `hf` model on the tasks, in process: computed while TorchServe starts. */
let reference: Promise<ReferenceReport>;

beforeAll(async () => {
  reference = runPython<ReferenceReport>(["reference", MODEL_PATH]);
  reference.catch(() => {}); // awaited by the last test
  srv = await smollm2OnVllm();
  key = readKeyFile(srv.paths.keyFile)!.inference.key;
  predictions = `http://127.0.0.1:${srv.ports.inference}/predictions/${MODEL}`;
  base = `${predictions}/${VERSION}/v1`;
}, 600_000);

const post = (url: string, body: unknown, headers: Record<string, string> = { Authorization: `Bearer ${key}` }) =>
  fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

/** One task of one simple_evaluate run: its metrics, and per document a [loglikelihood, is_greedy] per choice or the text. */
interface TaskRun {
  metrics: Record<string, number>;
  answers: ([number, boolean] | string)[][];
}
type EvaluateRun = Record<string, TaskRun>;
interface ClientsReport {
  sdk: Record<string, any>;
  sdk_seconds: number;
  lm_eval: { tokenizer_backend: string; tokenized: EvaluateRun; text: EvaluateRun; chat: EvaluateRun; seconds: Record<string, number> };
  seconds: number;
}
interface ReferenceReport {
  lm_eval: { plain: EvaluateRun; chat: EvaluateRun; seconds: Record<string, number> };
  seconds: number;
}

/** Per choice of every document: |served loglikelihood - reference|; and whether is_greedy agrees everywhere. */
function compareLoglikelihoods(served: TaskRun, reference: TaskRun): { differences: number[]; greedyAgrees: boolean } {
  expect(served.answers.map((doc) => doc.length)).toEqual(reference.answers.map((doc) => doc.length));
  const pairs = served.answers.flatMap((doc, d) =>
    doc.map((answer, c) => [answer, reference.answers[d]![c]!] as [[number, boolean], [number, boolean]]),
  );
  return {
    differences: pairs.map(([mine, theirs]) => Math.abs(mine[0] - theirs[0])),
    greedyAgrees: pairs.every(([mine, theirs]) => mine[1] === theirs[1]),
  };
}

/** Runs one mode of openai_clients.py and resolves with its report. */
function runPython<T>(args: string[]): Promise<T> {
  const env = {
    ...process.env,
    OPENAI_API_KEY: key ?? "",
    HF_HUB_OFFLINE: "1",
    HF_DATASETS_OFFLINE: "1",
    TRANSFORMERS_OFFLINE: "1",
    TOKENIZERS_PARALLELISM: "false",
    OMP_NUM_THREADS: "1",
  };
  return runPythonReport<T>("openai_clients.py", args, env, 240_000);
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
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 4,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
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
    const notJson = await post(`${base}/completions`, '{"prompt": ');
    expect(notJson.status).toBe(400);
    expect((await notJson.json()).error).toMatchObject({ type: "invalid_request_error", param: "body" });
    const mixed = await post(`${base}/completions`, { prompt: [1, "two"] });
    expect(mixed.status).toBe(400);
    expect((await mixed.json()).error).toMatchObject({ param: "prompt", message: expect.stringContaining("a list may not mix them") });
    const tooLong = await post(`${base}/completions`, { prompt: [new Array(8193).fill(1)], max_tokens: 1 });
    expect(tooLong.status).toBe(400);
    expect((await tooLong.json()).error).toMatchObject({ param: "prompt.0", message: expect.stringContaining("context length of 8192") });
    const unknown = await post(`${base}/embeddings`, { input: "x" });
    expect(unknown.status).toBe(404);
    expect((await unknown.json()).error).toMatchObject({
      type: "not_found_error",
      param: "url_path",
      message: expect.stringContaining('"v1/embeddings"'),
    });
  });

  it("keeps token authorization on for the OpenAI routes", async () => {
    const response = await post(`${base}/completions`, { prompt: "Hi", max_tokens: 1 }, {});
    expect(response.ok).toBe(false);
    expect([400, 401]).toContain(response.status);
  });

  it("answers the openai SDK (text and token-id prompts, the tokenizer routes) and lm-eval's evaluator as its hf model does", async () => {
    const { sdk, sdk_seconds: sdkSeconds, lm_eval: lm, seconds } = await runPython<ClientsReport>(["clients", base, MODEL, MODEL_PATH]);
    const ref = await reference;
    console.log(
      `clients ${seconds} s (SDK ${sdkSeconds} s, lm-eval runs ${JSON.stringify(lm.seconds)}), reference ${ref.seconds} s (runs ${JSON.stringify(ref.lm_eval.seconds)}, while TorchServe started)`,
    );

    expect(sdk.models).toEqual([MODEL]);
    const c = sdk.completion;
    expect(c.indices).toEqual([0, 1, 2, 3]);
    expect(c.tokens_join).toEqual(c.texts);
    for (const sizes of c.top_sizes) for (const size of sizes) expect(size === 1 || size === 2).toBe(true);
    // Every generated token counts, an EOS too (no stop sequences here: "stop" is an EOS), as vLLM counts.
    const generated = c.logprob_lengths.map((n: number, i: number) => n + (c.finish_reasons[i] === "stop" ? 1 : 0));
    expect(c.usage.completion_tokens).toBe(generated.reduce((a: number, b: number) => a + b, 0));
    expect(sdk.echo).toMatchObject({ text: "The capital of France is", first_logprob: null });

    // Seeded sampling gives the same choices streamed or not, alone or next to another prompt.
    expect(sdk.completion_stream.texts).toEqual(c.texts.slice(0, 2));
    expect(sdk.completion_stream.last_choices).toBe(0);
    expect(sdk.completion_stream.usage.completion_tokens).toBeGreaterThan(0);

    expect(sdk.chat.object).toBe("chat.completion");
    expect(sdk.chat.roles).toEqual(["assistant", "assistant"]);
    expect(sdk.chat.logprob_tokens_join).toEqual(sdk.chat.texts);
    expect(sdk.chat.bytes_ok).toBe(true);
    expect(sdk.chat.top_sizes).toEqual([[2], [2]]); // top_logprobs: 2, in chat's shape (a list per token)
    expect(sdk.chat_stream.first_role).toBe("assistant");
    expect(sdk.chat_stream.text).toBe(sdk.chat_stream.unstreamed_text);
    expect(sdk.chat_stream.usage).toEqual(sdk.chat_stream.unstreamed_usage);

    expect(sdk.errors.max_tokens).toMatchObject({
      class: "BadRequestError",
      status: 400,
      param: "max_tokens",
      type: "invalid_request_error",
    });
    expect(sdk.errors.top_logprobs).toMatchObject({ class: "BadRequestError", status: 400, param: "top_logprobs" });
    expect(sdk.errors.messages).toMatchObject({ class: "BadRequestError", status: 400, param: "messages.0.role" });
    expect(sdk.errors.embeddings).toMatchObject({ class: "NotFoundError", status: 404 });

    const t = sdk.token_ids;
    expect(t.texts_by_ids).toEqual(t.texts_by_text);
    expect(t.indices_by_ids).toEqual([0, 1]);
    expect(t.one_list_text).toBe(t.texts_by_text[1]);
    expect(t.usage_by_ids).toEqual(t.usage_by_text);
    expect(t.echo_text.startsWith("The capital of France is")).toBe(true);
    expect(t.echo_first_logprob).toBeNull();
    expect(t.echo_tokens).toBe(t.ids[0].length + 1);
    expect(t.echo_prompt_tokens).toBe(t.ids[0].length);
    // Scoring a prompt whose next token is EOS still gives lm-eval its one new token (the EOS, text "").
    expect(t.eos_finish_reason).toBe("stop");
    expect(t.eos_logprob_tokens).toBe(t.eos_prompt_tokens + 1);
    expect(t.eos_last_logprob).toBeLessThan(0);
    expect(t.round_trips).toEqual(["The capital of France is", "One, two, three,"]);
    expect(t.token_strs_join).toBe("The capital of France is");
    expect(t.count).toBe(t.ids[0].length);
    expect(t.max_model_len).toBe(8192);
    expect(t.chat_text).toBe(t.chat_reference);
    expect(t.bad_id).toMatchObject({ class: "BadRequestError", status: 400, param: "prompt.1.1" });
    expect(t.tokenizer_info).toMatchObject({
      eos_token: "<|im_end|>",
      model_max_length: 8192,
      chat_template: expect.stringContaining("im_start"),
    });

    // lm-eval's own evaluator, three ways, against its in-process hf model.
    const { plain, chat } = ref.lm_eval;
    expect(lm.tokenizer_backend).toBe("remote");
    for (const way of ["tokenized", "text"] as const) {
      const run = lm[way];
      const { differences, greedyAgrees } = compareLoglikelihoods(run[MC_TASK]!, plain[MC_TASK]!);
      console.log(
        `lm-eval ${way} requests vs hf: ${differences.length} loglikelihoods, max |difference| = ${Math.max(...differences).toExponential(2)}; metrics ${JSON.stringify(run[MC_TASK]!.metrics)} ${JSON.stringify(run[GEN_TASK]!.metrics)}`,
      );
      expect(Math.max(...differences)).toBeLessThan(LOGLIKELIHOOD_TOLERANCE);
      expect(greedyAgrees).toBe(true);
      expect(run[MC_TASK]!.metrics).toEqual(plain[MC_TASK]!.metrics);
      expect(run[GEN_TASK]!.answers).toEqual(plain[GEN_TASK]!.answers);
      expect(run[GEN_TASK]!.metrics).toEqual(plain[GEN_TASK]!.metrics);
    }
    // The numbers mean something: " Paris" is far likelier than " a banana", and some answers are right.
    const paris = plain[MC_TASK]!.answers[0] as [number, boolean][];
    expect(paris[0]![0]).toBeGreaterThan(paris[2]![0] + 5);
    expect(plain[GEN_TASK]!.metrics.exact_match).toBeGreaterThan(0);
    console.log(`lm-eval chat vs hf with the chat template: ${JSON.stringify(lm.chat[GEN_TASK]!.answers)}`);
    expect(lm.chat[GEN_TASK]!.answers).toEqual(chat[GEN_TASK]!.answers);
    expect(lm.chat[GEN_TASK]!.metrics).toEqual(chat[GEN_TASK]!.metrics);
    expect(chat[GEN_TASK]!.answers).not.toEqual(plain[GEN_TASK]!.answers); // the template was applied

    // Every refusal above left the worker serving.
    expect((await post(`${base}/completions`, { prompt: "Hi", max_tokens: 1 })).status).toBe(200);
  }, 300_000);
});

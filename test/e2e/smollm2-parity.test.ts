// A real model end to end: SmolLM2-135M-Instruct through the whole stack
// (HTTP -> TorchServe 0.12 -> shim -> Node handler -> shim engine) against
// transformers itself (test/e2e/reference/transformers_reference.py: greedy
// `model.generate` on each prompt alone, and a separate full forward pass for
// the logprobs). Nothing of tsserve's code computes the expected values.
import { execFile } from "node:child_process";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TorchServeClient } from "../../src/client/http.ts";
import { CompletionResponse } from "../../src/completions/response.ts";
import { ROOT } from "./helpers.ts";
import { SMOLLM2_VLLM, smollm2OnVllm } from "./servers.ts";

const MODEL = SMOLLM2_VLLM;
const MODEL_PATH = path.join(ROOT, ".cache", "smollm2-135m-instruct");
const TOLERANCE = 1e-4;

const LONG = Array.from(
  { length: 12 },
  (_, i) =>
    `Paragraph ${i + 1}: The history of computing spans centuries, from mechanical calculators to electronic machines that fill rooms and then fit in a pocket.`,
).join("\n");

type Case = { name: string; prompt?: string; messages?: { role: string; content: string }[]; max_tokens: number };
const CASES: Case[] = [
  { name: "short", prompt: "The capital of France is", max_tokens: 12 },
  { name: "chat that ends with EOS", messages: [{ role: "user", content: "What is the capital of France?" }], max_tokens: 40 },
  {
    name: "chat with a system message and two turns",
    messages: [
      { role: "system", content: "You answer in one short sentence." },
      { role: "user", content: "Name a primary colour." },
      { role: "assistant", content: "Red is a primary colour." },
      { role: "user", content: "Name another one." },
    ],
    max_tokens: 12,
  },
  { name: "long (about 400 tokens)", prompt: `${LONG}\nSummary:`, max_tokens: 8 },
  { name: "multi-line code", prompt: 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n', max_tokens: 12 },
  { name: "question and answer", prompt: "Question: What is 2 + 2?\nAnswer:", max_tokens: 8 },
  { name: "non-ASCII (French, German)", prompt: "Le café à Paris est très bon. Die Straße in München ist", max_tokens: 12 },
  { name: "non-ASCII (Chinese, Japanese)", prompt: "北京是中国的首都。東京は", max_tokens: 12 },
  { name: "emoji and symbols", prompt: "I love pizza 🍕 and ☕ because", max_tokens: 10 },
  { name: "a list", prompt: "Three fruits:\n1. Apple\n2.", max_tokens: 12 },
  { name: "tabs and a single character", prompt: "a\tb\tc\t", max_tokens: 8 },
];
const ECHO_PROMPTS = [
  "The quick brown fox jumps over the lazy dog.",
  "Ünïcödé text: naïve café, 東京, 🍕.",
  "Question: What is 2 + 2?\nAnswer: 4",
];

interface ReferenceCase {
  prompt: string;
  prompt_tokens: number;
  token_ids: number[];
  tokens: string[];
  text: string;
  finish_reason: "stop" | "length";
  token_logprobs: number[];
}
interface Reference {
  cases: ReferenceCase[];
  echo: { prompt_tokens: number; token_logprobs: (number | null)[] }[];
}

let client: TorchServeClient;
let reference: Reference;

async function computeReference(): Promise<Reference> {
  const python = path.join(ROOT, ".venv", "bin", "python");
  const script = path.join(ROOT, "test", "e2e", "reference", "transformers_reference.py");
  // One torch thread: npm test shares the two cores with pytest and the other lane, and a team of two
  // spin-waits for its descheduled half at every op (python_shim/tsserve_shim/worker/handler.py cpu_threads).
  const child = execFile(python, [script], { maxBuffer: 64 << 20, env: { ...process.env, TQDM_DISABLE: "1", OMP_NUM_THREADS: "1" } });
  child.stdin!.end(JSON.stringify({ model_path: MODEL_PATH, cases: CASES, echo: ECHO_PROMPTS }));
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (c) => (stdout += c));
  child.stderr!.on("data", (c) => (stderr += c));
  const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
  if (code !== 0) throw new Error(`reference script failed (${code}): ${stderr.slice(-2000)}`);
  return JSON.parse(stdout) as Reference;
}

beforeAll(async () => {
  const serving = smollm2OnVllm().then((server) => {
    client = server.client;
  });
  [reference] = await Promise.all([computeReference(), serving]);
}, 600_000);

afterAll(() => {
  console.log(
    `parity: ${compared.requests} greedy requests, ${compared.tokens} tokens equal to generate, max |token logprob - forward pass| = ${compared.maxLogprobDiff.toExponential(2)}`,
  );
});

async function complete(body: Record<string, unknown>): Promise<CompletionResponse> {
  const result = await client.predict(MODEL, JSON.stringify(body));
  if (result.status !== 200) throw new Error(`HTTP ${result.status}: ${result.body}`);
  return CompletionResponse.parse(JSON.parse(result.body));
}

const greedy = (c: Case): Record<string, unknown> => ({
  ...(c.prompt !== undefined ? { prompt: c.prompt } : { messages: c.messages }),
  max_tokens: c.max_tokens,
  temperature: 0,
  logprobs: 1,
});

/** What the parity checks compared, printed once at the end (for the README and notes). */
const compared = { requests: 0, tokens: 0, maxLogprobDiff: 0 };

function expectParity(body: CompletionResponse, ref: ReferenceCase, label: string): void {
  const choice = body.choices[0]!;
  expect(choice.text, label).toBe(ref.text);
  expect(choice.finish_reason, label).toBe(ref.finish_reason);
  expect(body.usage.prompt_tokens, label).toBe(ref.prompt_tokens);
  // EOS ends the text and is not reported, as the engine's contract says, but counts as generated (vLLM's count).
  expect(body.usage.completion_tokens, label).toBe(ref.token_ids.length + (ref.finish_reason === "stop" ? 1 : 0));
  expect(choice.logprobs!.tokens, label).toEqual(ref.tokens);
  expect(choice.logprobs!.tokens.join(""), label).toBe(choice.text);
  const got = choice.logprobs!.token_logprobs as number[];
  expect(got.length, label).toBe(ref.token_logprobs.length);
  got.forEach((value, i) => {
    expect(Math.abs(value - ref.token_logprobs[i]!), `${label}: token ${i}`).toBeLessThan(TOLERANCE);
  });
  compared.requests += 1;
  compared.tokens += got.length;
  compared.maxLogprobDiff = Math.max(compared.maxLogprobDiff, ...got.map((value, i) => Math.abs(value - ref.token_logprobs[i]!)));
}

describe("SmolLM2-135M-Instruct answers as transformers' generate does", () => {
  it("the reference itself is sensible: Paris, ending with EOS", () => {
    expect(reference.cases[1]!.text).toContain("Paris");
    expect(reference.cases[1]!.finish_reason).toBe("stop");
    expect(reference.cases[3]!.prompt_tokens).toBeGreaterThan(300);
  });

  it("greedy text, tokens, finish reasons and token logprobs, one request at a time", async () => {
    for (const [i, c] of CASES.entries()) expectParity(await complete(greedy(c)), reference.cases[i]!, c.name);
  }, 240_000);

  it("the same in one batch of mixed lengths", async () => {
    // Every case but the long one (its prefill alone would dominate the batch on 2 cores).
    const batched = CASES.map((c, i) => [c, reference.cases[i]!] as const)
      .filter(([c]) => !c.name.startsWith("long"))
      .slice(0, 8);
    const bodies = await Promise.all(batched.map(([c]) => complete(greedy(c))));
    bodies.forEach((body, i) => {
      expectParity(body, batched[i]![1], `batched: ${batched[i]![0].name}`);
    });
    // Under continuous batching each request's raw_compute_time is its own (admission to answer), so it no longer shows a shared pass.
  }, 240_000);

  it("echo with max_tokens 0 gives the prompt's logprobs as a forward pass does (log-likelihood scoring)", {
    timeout: 120_000,
  }, async () => {
    for (const [i, prompt] of ECHO_PROMPTS.entries()) {
      const body = await complete({ prompt, max_tokens: 0, echo: true, logprobs: 1 });
      const choice = body.choices[0]!;
      expect(choice.text).toBe(prompt);
      const want = reference.echo[i]!.token_logprobs;
      expect(choice.logprobs!.token_logprobs.length).toBe(want.length);
      expect(choice.logprobs!.token_logprobs[0]).toBeNull();
      want.slice(1).forEach((value, j) => {
        expect(Math.abs(choice.logprobs!.token_logprobs[j + 1]! - value!), `${prompt}: token ${j + 1}`).toBeLessThan(TOLERANCE);
      });
    }
  });

  it("a stop sequence that ends inside a token cuts the text before it, finish_reason stop", { timeout: 120_000 }, async () => {
    const ref = reference.cases[1]!;
    const start = ref.tokens.findIndex((t) => t.trim().length >= 3);
    const before = ref.tokens.slice(0, start).join("");
    const lead = ref.tokens[start]!.length - ref.tokens[start]!.trimStart().length;
    const stop = ref.tokens[start]!.trimStart().slice(0, 2);
    expect(ref.text.indexOf(stop)).toBe(before.length + lead);
    const body = await complete({ ...greedy(CASES[1]!), stop: [stop] });
    expect(body.choices[0]!.text).toBe(ref.text.slice(0, before.length + lead));
    expect(body.choices[0]!.finish_reason).toBe("stop");
  });

  it("EOS ends a chat answer with finish_reason stop, the budget with length", { timeout: 120_000 }, async () => {
    const eos = await complete({ ...greedy(CASES[1]!), logprobs: 0 });
    expect(eos.choices[0]!.finish_reason).toBe("stop");
    expect(eos.choices[0]!.text).not.toContain("<|im_end|>");
    const cut = await complete({ ...greedy(CASES[1]!), max_tokens: 3 });
    expect(cut.choices[0]!.finish_reason).toBe("length");
    expect(cut.choices[0]!.logprobs!.tokens).toEqual(reference.cases[1]!.tokens.slice(0, 3));
  });

  it("a seeded sampled request repeats exactly and does not depend on its batch mates", async () => {
    const seeded = { prompt: "Once upon a time", max_tokens: 16, temperature: 0.9, top_k: 50, top_p: 0.95, seed: 1234 };
    const alone = await complete(seeded);
    const again = await complete(seeded);
    expect(again.choices[0]!.text).toBe(alone.choices[0]!.text);
    const batch = await Promise.all([
      complete(seeded),
      complete({ ...seeded, seed: 99 }),
      complete({ prompt: "A long time ago in a galaxy", max_tokens: 12, temperature: 1.0, seed: 5 }),
      complete(greedy(CASES[0]!)),
    ]);
    expect(batch[0]!.choices[0]!.text).toBe(alone.choices[0]!.text);
    // Another seed gives another sample (else the seed would not reach the sampler).
    expect(batch[1]!.choices[0]!.text).not.toBe(alone.choices[0]!.text);
  }, 240_000);
});

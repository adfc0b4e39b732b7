// The AgentInstruct two-stage handler (explanation, then answer, inside one
// request) served on both engines at once, on one TorchServe, with the same
// model (SmolLM2-135M-Instruct): the vLLM engine and the transformers engine
// must give the same greedy explanations, answers and token logprobs.
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createArchive } from "../../src/archive/archive.ts";
import type { TorchServeClient } from "../../src/client/http.ts";
import { connect, registerWatched, serverProcesses, startServer, stopServer } from "../../src/client/torchserve-process.ts";
import { configWith, isolatedServer, ROOT, SMOLLM2_CONFIG, VLLM_TEST_SETTINGS } from "./helpers.ts";

const HANDLER = path.join(ROOT, "handlers", "llama-2-7b-chat-agentinstruct.ts");
const ENGINES = { vllm: VLLM_TEST_SETTINGS, transformers: { "handler.engine": "transformers" } } as const;
type Engine = keyof typeof ENGINES;
const server = isolatedServer("engines-agentinstruct");
const TOLERANCE = 1e-4;

const REQUESTS = [
  { prompt: "Question: What is the capital of France?\nAnswer:", instructions: "1. Read the question.\n2. Answer with one word.", input_prefix: "Question: ", output_prefix: "Answer: " },
  { prompt: "Which is larger, 7 or 12?\nA. 7\nB. 12\nAnswer:", instructions: "Pick the letter of the right choice.", task: ["A", "B"] },
  { prompt: "Translate 'good morning' to French.", instructions: "Give only the translation.", task: "generation" },
].map((r) => ({ ...r, temperature: 0, max_tokens: 12, explanation_max_tokens: 40, logprobs: 1 }));

interface AgentAnswer {
  choices: { text: string; finish_reason: string; full_text: string; logprobs: { tokens: string[]; token_logprobs: number[] } }[];
  explanation: { text: string; finish_reason: string };
}

let client: TorchServeClient;

beforeAll(async () => {
  for (const [engine, settings] of Object.entries(ENGINES)) {
    await createArchive({
      modelName: `agent-${engine}`, version: "1.0", handler: HANDLER, exportPath: server.modelStore,
      configFile: configWith(SMOLLM2_CONFIG, path.join(server.scratch, `agent-${engine}.yaml`), settings),
    });
  }
  await startServer({ paths: server.paths, tsConfig: server.tsConfig, modelStore: server.modelStore });
  client = connect(server.paths);
  await Promise.all(Object.keys(ENGINES).map((engine) =>
    registerWatched(client, { url: `agent-${engine}.mar`, modelName: `agent-${engine}`, initialWorkers: 1 }, server.paths)));
}, 600_000);

afterAll(async () => {
  await stopServer({ paths: server.paths });
  expect(serverProcesses(server.paths)).toEqual([]);
}, 120_000);

async function ask(engine: Engine, body: unknown): Promise<AgentAnswer> {
  const result = await client.predict(`agent-${engine}`, JSON.stringify(body));
  if (result.status !== 200) throw new Error(`${engine}: HTTP ${result.status}: ${result.body}`);
  return JSON.parse(result.body) as AgentAnswer;
}

describe("the AgentInstruct handler on both engines", () => {
  it("gives the same explanations, answers and logprobs on vLLM as on the transformers engine", async () => {
    let explained = 0;
    for (const request of REQUESTS) {
      const [reference, served] = await Promise.all([ask("transformers", request), ask("vllm", request)]);
      explained += reference.explanation.text.length;
      expect(served.explanation).toMatchObject({ text: reference.explanation.text, finish_reason: reference.explanation.finish_reason });
      const [a, b] = [reference.choices[0]!, served.choices[0]!];
      expect(b.text).toBe(a.text);
      expect(b.full_text).toBe(a.full_text);
      expect(b.finish_reason).toBe(a.finish_reason);
      expect(b.logprobs.tokens).toEqual(a.logprobs.tokens);
      b.logprobs.token_logprobs.forEach((lp, i) => expect(Math.abs(lp - a.logprobs.token_logprobs[i]!)).toBeLessThan(TOLERANCE));
    }
    expect(explained).toBeGreaterThan(0); // stage 1 said something to compare
  }, 300_000);
});

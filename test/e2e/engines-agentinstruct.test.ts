// The AgentInstruct two-stage handler (explanation, then answer, inside one
// request) served on both engines at once, with the same
// model (SmolLM2-135M-Instruct): the vLLM engine and the transformers engine
// must give the same greedy explanations, answers and token logprobs. The vLLM
// side is the run's one vLLM model (servers.ts) with this handler swapped in.
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { configWith, ROOT, SMOLLM2_CONFIG } from "./helpers.ts";
import { sharedModel, sharedServer, SMOLLM2_VLLM, smollm2OnVllm, withHandler, type Engine, type RunningServer } from "./servers.ts";

const HANDLER = path.join(ROOT, "handlers", "llama-2-7b-chat-agentinstruct.ts");
const TOLERANCE = 1e-4;

const REQUESTS = [
  {
    prompt: "Question: What is the capital of France?\nAnswer:",
    instructions: "1. Read the question.\n2. Answer with one word.",
    input_prefix: "Question: ",
    output_prefix: "Answer: ",
  },
  { prompt: "Which is larger, 7 or 12?\nA. 7\nB. 12\nAnswer:", instructions: "Pick the letter of the right choice.", task: ["A", "B"] },
  { prompt: "Translate 'good morning' to French.", instructions: "Give only the translation.", task: "generation" },
].map((r) => ({ ...r, temperature: 0, max_tokens: 12, explanation_max_tokens: 40, logprobs: 1 }));

interface AgentAnswer {
  choices: { text: string; finish_reason: string; full_text: string; logprobs: { tokens: string[]; token_logprobs: number[] } }[];
  explanation: { text: string; finish_reason: string };
}

/** The answering server of each engine: the shared transformers TorchServe, and the run's one vLLM model with this handler swapped in. */
const servers: Partial<Record<Engine, RunningServer>> = {};
const MODELS: Record<Engine, string> = { transformers: "agent-transformers", vllm: SMOLLM2_VLLM };

beforeAll(async () => {
  servers.vllm = await smollm2OnVllm();
  servers.transformers = await sharedServer("transformers");
  const configFile = configWith(SMOLLM2_CONFIG, path.join(servers.transformers.scratch, "agent-transformers.yaml"), {
    "handler.engine": "transformers",
  });
  await sharedModel(servers.transformers, { name: MODELS.transformers, handler: HANDLER, configFile });
}, 600_000);
withHandler(() => servers.vllm!, SMOLLM2_VLLM, HANDLER);

async function ask(engine: Engine, body: unknown): Promise<AgentAnswer> {
  const result = await servers[engine]!.client.predict(MODELS[engine], JSON.stringify(body));
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
      b.logprobs.token_logprobs.forEach((lp, i) => {
        expect(Math.abs(lp - a.logprobs.token_logprobs[i]!)).toBeLessThan(TOLERANCE);
      });
    }
    expect(explained).toBeGreaterThan(0); // stage 1 said something to compare
  }, 300_000);
});

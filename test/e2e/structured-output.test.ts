// Issue 30: structured output on a real TorchServe 0.12 with the real
// SmolLM2-135M-Instruct. The openai Python SDK's `response_format` (a pydantic
// model through `chat.completions.parse`, json_object, guided_choice, an
// unsupported schema, a too-short max_tokens) against the chat route of the
// shipped SmolLM2 handler (test/e2e/structured_clients.py), and the example
// handler handlers/smollm2-multiple-choice.ts answering with its typed value.
//
// Two models on the transformers engine, on the run's shared transformers
// TorchServe (servers.ts); the vLLM engine's structured outputs are held to the
// same answers in python_shim/tests/engine/vllm/test_vllm_structured.py.
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { readKeyFile } from "../../src/client/keys.ts";
import { ROOT, SMOLLM2_CONFIG, configWith, runPythonReport } from "./helpers.ts";
import { sharedModel, sharedServer, type RunningServer } from "./servers.ts";

const CHAT_MODEL = "structured-smollm2";
const MC_MODEL = "structured-smollm2-mc";
const TRANSFORMERS = { "handler.engine": "transformers", "handler.cpu_threads": 1 };

let srv: RunningServer;
let key = "";
let inference = "";

beforeAll(async () => {
  srv = await sharedServer("transformers");
  const configFile = configWith(SMOLLM2_CONFIG, path.join(srv.scratch, `${CHAT_MODEL}.yaml`), TRANSFORMERS);
  await sharedModel(srv, { name: CHAT_MODEL, handler: path.join(ROOT, "handlers", "smollm2-135m-instruct.ts"), configFile });
  await sharedModel(srv, { name: MC_MODEL, handler: path.join(ROOT, "handlers", "smollm2-multiple-choice.ts"), configFile });
  key = readKeyFile(srv.paths.keyFile)!.inference.key;
  inference = `http://127.0.0.1:${srv.ports.inference}/predictions`;
}, 300_000);

function clients(): Promise<any> {
  const env = { ...process.env, OPENAI_API_KEY: key, OMP_NUM_THREADS: "1" };
  return runPythonReport("structured_clients.py", [`${inference}/${CHAT_MODEL}/1.0/v1`, CHAT_MODEL], env, 400_000);
}

describe("structured output through TorchServe", () => {
  it("the openai SDK's response_format: parsed pydantic models, json_object, guided_choice, a 400 naming the keyword, the length error", async () => {
    const report = await clients();
    expect(report.parse).toHaveLength(10);
    expect(report.parse.every((r: any) => r.finish_reason === "stop" && r.parsed && r.valid)).toBe(true);
    // Any object: one that stops is a JSON object, one cut by max_tokens an object's start.
    const jsonObject = report.json_object;
    expect(jsonObject.finish_reason === "stop" ? jsonObject.is_object : jsonObject.starts === "{").toBe(true);
    expect(["yes", "no"]).toContain(report.guided_choice);
    expect(report.unsupported).toEqual({
      status: 400,
      message: 'response_format.json_schema.schema: "uniqueItems" at /properties/tags is not supported',
      param: "response_format",
    });
    expect(report.too_short.error).toBe("LengthFinishReasonError");
    expect(report.too_short.content.startsWith("{")).toBe(true);
  }, 420_000);

  it("the example handler answers with its typed value", async () => {
    const response = await fetch(`${inference}/${MC_MODEL}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${key}` },
      body: JSON.stringify({ question: "Which planet is the largest?", choices: ["Mars", "Jupiter", "Venus", "Earth"] }),
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { answer: string; choice: string; explanation: string; finish_reason: string };
    expect(["A", "B", "C", "D"]).toContain(body.answer);
    expect(body.choice).toBe(["Mars", "Jupiter", "Venus", "Earth"][["A", "B", "C", "D"].indexOf(body.answer)]);
    expect(body.explanation.length).toBeGreaterThan(0);
    expect(body.finish_reason).toBe("stop");
  }, 120_000);
});

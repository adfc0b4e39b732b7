// What tsserve dev's inspector costs a handler's request (docs/handlers.md, "The inspector"): the runtime's
// `handle` for one request through a trivial handler and an in-process model, with the inspector off (as in
// production) and on (journal posts dropped). With a second source folder (the same files at an older
// commit), its runtime is timed too, to show that the off path costs what it cost before the inspector.
//   npx tsx bench/inspector-overhead.ts [OLD_SRC]
import path from "node:path";
import { PassThrough } from "node:stream";
import { fileURLToPath, pathToFileURL } from "node:url";
import { spawnSync } from "node:child_process";
import { z } from "zod";

const ROUNDS = 7;
const BATCHES = 3000;

const outcome = (tokens: number) => {
  const logprobs = {
    tokens: Array(tokens).fill("+"),
    token_ids: Array(tokens).fill(9),
    token_logprobs: Array(tokens).fill(-0.1),
    top_logprobs: Array(tokens).fill(null),
    text_offset: Array(tokens).fill(0),
  };
  return {
    ok: true,
    prompt: { ...logprobs, tokens: [], token_ids: [], token_logprobs: [], top_logprobs: [], text_offset: [] },
    sequences: [{ text: "+", finish_reason: "length", logprobs, cumulative_logprob: 0 }],
    prompt_tokens: 3,
    compute_time: 0,
  };
};

async function runtimeFrom(src: string, withInspector: boolean) {
  const load = (file: string) => import(pathToFileURL(path.resolve(src, file)).href);
  const [{ Handler }, { startRuntime }, { Connection }, methods, { PROTOCOL_VERSION }] = await Promise.all(
    ["handler/handler-class.ts", "runtime/bridge-endpoint.ts", "protocol/connection.ts", "protocol/methods.ts", "protocol/messages.ts"].map(
      load,
    ),
  );
  class Trivial extends Handler {
    readonly requestSchema = z.object({ prompt: z.string() });
    async preprocess(items: { prompt: string }[]) {
      return items;
    }
    async inference(items: { prompt: string }[], ctx: { model: { generate: (r: unknown[]) => Promise<unknown[]> } }) {
      const base = {
        max_tokens: 4,
        temperature: 0,
        top_p: 1,
        top_k: 0,
        repetition_penalty: 1,
        seed: null,
        stop: [],
        logprobs: 0,
        num_sequences: 1,
        echo: false,
        stream: false,
      };
      return ctx.model.generate(items.map((item) => ({ ...base, prompt: item.prompt })));
    }
    async postprocess(outcomes: unknown[]) {
      return outcomes.map(() => ({ ok: true }));
    }
  }
  const inspector = withInspector ? (await load("inspector/journal-client.ts")).inspectorFor(() => {}) : undefined;
  const toNode = new PassThrough();
  const fromNode = new PassThrough();
  startRuntime(Trivial, { input: toNode, output: fromNode, log: () => {}, ...(inspector ? { inspector } : {}) });
  const shim = new Connection(fromNode, toNode);
  shim.onRequest(methods.Generate, ({ requests }: { requests: unknown[] }) => ({ outcomes: requests.map(() => outcome(4)) }));
  shim.onRequest(methods.Tokenize, () => ({ ids: [[1, 2, 3]] }));
  shim.onRequest(methods.Detokenize, ({ ids }: { ids: number[][] }) => ({ texts: ids.map(() => "t") }));
  const modelInfo = {
    name_or_path: "m",
    context_length: 512,
    vocab_size: 10,
    bos_token: null,
    eos_token: null,
    chat_template: null,
    device: "cpu",
  };
  await shim.sendRequest(methods.Initialize, {
    protocol_version: PROTOCOL_VERSION,
    model_name: "m",
    model_dir: "/tmp",
    gpu_id: null,
    batch_size: 1,
    model_config: { handler: { model_path: "/tmp" } },
    model_info: modelInfo,
  });
  return (batch: number) => shim.sendRequest(methods.Handle, { batch_id: batch, requests: [{ body: { prompt: "hello" } }] });
}

async function microsPerBatchOf(handle: (batch: number) => Promise<unknown>): Promise<number> {
  // CPU time, not wall time: the machine's other work then moves the figures less.
  const started = process.cpuUsage();
  for (let batch = 0; batch < BATCHES; batch++) await handle(batch);
  const spent = process.cpuUsage(started);
  return (spent.user + spent.system) / BATCHES;
}

const variants: [string, string, boolean][] = [
  ["inspector off (production)", "src", false],
  ["inspector on (tsserve dev)", "src", true],
  ...(process.argv[2] ? [["before the inspector", process.argv[2], false] as [string, string, boolean]] : []),
];

if (process.argv[2] === "--variant") {
  // One variant per process, as in production (where the inspector's code never runs beside the plain path).
  const handle = await runtimeFrom(process.argv[4]!, process.argv[3] === "on");
  await microsPerBatchOf(handle); // warm-up
  console.log(await microsPerBatchOf(handle));
  process.exit(0);
}

// Rounds interleave the variants, so that a busy moment of the machine falls on all of them.
const rounds: number[][] = variants.map(() => []);
for (let round = 0; round < ROUNDS; round++) {
  for (const [k, [, src, on]] of variants.entries()) {
    const args = [...process.execArgv, fileURLToPath(import.meta.url), "--variant", on ? "on" : "off", src];
    const child = spawnSync(process.execPath, args, { encoding: "utf8" });
    rounds[k]!.push(Number(child.stdout.trim()));
  }
}
for (const [k, [name]] of variants.entries()) {
  const median = rounds[k]!.sort((a, b) => a - b)[ROUNDS >> 1]!;
  console.log(
    `${name.padEnd(28)} ${median.toFixed(1)} CPU-µs per request (median of ${ROUNDS} interleaved processes, ${BATCHES} requests each)`,
  );
}

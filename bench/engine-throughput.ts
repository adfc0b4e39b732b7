/**
 * `throughput.c16` of `npm run bench:engine`: completion tokens/s with 16
 * concurrent clients (mixed max_tokens 16-128, sampled, streamed) through one
 * TorchServe 0.12, for three model configs of the same handler and model:
 *
 * - continuous: `asyncCommunication: true` (the engine's iteration-level scheduler);
 * - static: `batchSize: 8`, `maxBatchDelay: 50` (TorchServe forms a batch, it runs to its end);
 * - batch1: `batchSize: 1` (the seed's way).
 *
 * Also p50 time to first token (first streamed chunk) and p50 inter-token
 * latency ((last chunk - first chunk) / (tokens - 1)) per request.
 *
 *   npx tsx bench/engine-throughput.ts [--config configs/tiny-llama-2-chat.yaml] [--requests 2]
 *       [--port-base 38380] [--merge bench/results/engine.json]
 *
 * Prints the JSON; with --merge, adds it as `throughput` to that file and a table to the .md beside it.
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { createArchive } from "../src/archive/archive.ts";
import type { TorchServeClient } from "../src/client/http.ts";
import { workPaths } from "../src/client/paths.ts";
import { loopbackProperties } from "../src/client/properties.ts";
import { connect, runningServer, startServer, stopServer } from "../src/client/torchserve-process.ts";
import { registerWatched } from "../src/client/model-registration.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const { values: args } = parseArgs({
  options: {
    config: { type: "string", default: path.join(ROOT, "configs", "tiny-llama-2-chat.yaml") },
    handler: { type: "string", default: path.join(ROOT, "handlers", "llama-2-7b-chat.ts") },
    requests: { type: "string", default: "2" },
    "port-base": { type: "string", default: "38380" },
    merge: { type: "string" },
  },
});
const CLIENTS = 16;
const PER_CLIENT = Number(args.requests);
const PORT = Number(args["port-base"]);
const MODES = {
  continuous: { asyncCommunication: "true", batchSize: 1 },
  static: { asyncCommunication: "false", batchSize: 8, maxBatchDelay: 50 },
  batch1: { asyncCommunication: "false", batchSize: 1, maxBatchDelay: 1 },
} as const;
type Mode = keyof typeof MODES;

interface Timing {
  tokens: number;
  ttft: number;
  itl: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2 : NaN;
};
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

/** The model config with `settings` as top-level keys and model_path made absolute. */
function modeConfig(file: string, settings: Record<string, string | number>): string {
  const source = path.resolve(args.config!);
  let yaml = fs
    .readFileSync(source, "utf8")
    .replace(/model_path: "?([^"\n]*)"?/, (_m, p: string) => `model_path: "${path.resolve(path.dirname(source), p)}"`);
  for (const [key, value] of Object.entries(settings)) {
    const line = new RegExp(`^${key}: .*$`, "m");
    yaml = line.test(yaml) ? yaml.replace(line, `${key}: ${value}`) : `${key}: ${value}\n${yaml}`;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, yaml);
  return file;
}

/** max_tokens of client c's request r: spread over 16..128, the same in every mode. */
const maxTokens = (c: number, r: number) => 16 + ((c * 37 + r * 53) % 113);

async function oneRequest(client: TorchServeClient, model: string, c: number, r: number): Promise<Timing> {
  const body = {
    prompt: `Client ${c} asks question ${r}: tell me about`,
    max_tokens: maxTokens(c, r),
    temperature: 0.8,
    top_k: 50,
    top_p: 1,
    seed: c * 100 + r,
    stream: true,
  };
  const started = performance.now();
  const arrivals: number[] = [];
  let tail = "";
  let tokens = 0;
  const result = await client.predictStream(model, JSON.stringify(body), (chunk) => {
    arrivals.push(performance.now());
    tail += chunk;
  });
  if (result.status !== 200) throw new Error(`${model}: HTTP ${result.status}: ${tail.slice(0, 300)}`);
  for (const line of tail.trim().split("\n")) {
    const usage = (JSON.parse(line) as { usage?: { completion_tokens: number } }).usage;
    if (usage) tokens = usage.completion_tokens;
  }
  const first = arrivals[0]! - started;
  const itl = tokens > 1 ? (arrivals.at(-1)! - arrivals[0]!) / (tokens - 1) : NaN;
  return { tokens, ttft: first, itl };
}

async function load(client: TorchServeClient, model: string): Promise<Record<string, number>> {
  const started = performance.now();
  const timings = (
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        const mine: Timing[] = [];
        for (let r = 0; r < PER_CLIENT; r++) mine.push(await oneRequest(client, model, c, r));
        return mine;
      }),
    )
  ).flat();
  const seconds = (performance.now() - started) / 1000;
  const tokens = timings.reduce((sum, t) => sum + t.tokens, 0);
  return {
    tokens_per_s: round(tokens / seconds, 1),
    completion_tokens: tokens,
    seconds: round(seconds, 2),
    p50_ttft_ms: round(median(timings.map((t) => t.ttft)), 1),
    p50_itl_ms: round(median(timings.map((t) => t.itl).filter(Number.isFinite)), 2),
  };
}

async function main(): Promise<void> {
  const work = path.join(ROOT, ".work", "bench-engine");
  fs.rmSync(work, { recursive: true, force: true });
  const paths = workPaths({ ...process.env, TSSERVE_WORK_DIR: work });
  const modelStore = path.join(work, "model-store");
  fs.mkdirSync(modelStore, { recursive: true });
  const tsConfig = path.join(work, "config.properties");
  fs.writeFileSync(tsConfig, loopbackProperties(PORT));
  for (const [mode, settings] of Object.entries(MODES)) {
    const configFile = modeConfig(path.join(work, "scratch", `${mode}.yaml`), { ...settings, minWorkers: 1, maxWorkers: 1 });
    await createArchive({
      modelName: `engine-${mode}`,
      version: "1.0",
      handler: args.handler!,
      configFile,
      exportPath: modelStore,
      force: true,
    });
  }
  const stop = async () => {
    if (runningServer(paths)) await stopServer({ paths });
  };
  process.on("SIGINT", () => void stop().then(() => process.exit(130)));
  const figures: Record<string, Record<string, number>> = {};
  try {
    await startServer({ paths, tsConfig, modelStore });
    const client = connect(paths);
    for (const mode of Object.keys(MODES) as Mode[]) {
      await registerWatched(client, { url: `engine-${mode}.mar`, modelName: `engine-${mode}`, initialWorkers: 1 }, paths);
      await oneRequest(client, `engine-${mode}`, 0, 0); // warm-up
      figures[mode] = await load(client, `engine-${mode}`);
      await client.unregisterModel(`engine-${mode}`).catch(() => undefined);
      console.error(`${mode}: ${JSON.stringify(figures[mode])}`);
    }
  } finally {
    await stop();
  }
  const c = figures.continuous!,
    s = figures.static!,
    b = figures.batch1!;
  const throughput = {
    c16: figures,
    clients: CLIENTS,
    requests_per_client: PER_CLIENT,
    model_config: path.relative(ROOT, path.resolve(args.config!)),
    continuous_vs_batch1: round(c.tokens_per_s! / b.tokens_per_s!, 2),
    continuous_vs_static: round(c.tokens_per_s! / s.tokens_per_s!, 2),
  };
  console.log(JSON.stringify(throughput, null, 2));
  if (args.merge) {
    const merged = fs.existsSync(args.merge) ? JSON.parse(fs.readFileSync(args.merge, "utf8")) : {};
    const byConfig = { ...(merged.throughput?.c16 ? {} : merged.throughput), [throughput.model_config]: throughput };
    fs.writeFileSync(args.merge, `${JSON.stringify({ ...merged, throughput: byConfig }, null, 2)}\n`);
    const md = args.merge.replace(/\.json$/, ".md");
    const rows = (Object.keys(MODES) as Mode[]).map((m) => {
      const f = figures[m]!;
      return `| ${m} | ${f.tokens_per_s} | ${f.p50_ttft_ms} | ${f.p50_itl_ms} | ${f.completion_tokens} in ${f.seconds} s |`;
    });
    fs.appendFileSync(
      md,
      [
        "",
        `## throughput.c16 (${throughput.model_config}, ${CLIENTS} clients x ${PER_CLIENT} streamed sampled requests, max_tokens 16-128)`,
        "",
        "| mode | tokens/s | p50 time to first token (ms) | p50 inter-token (ms) | work |",
        "| --- | ---: | ---: | ---: | --- |",
        ...rows,
        "",
        `continuous / batch 1: ${throughput.continuous_vs_batch1} (goal >= 5); continuous / static: ${throughput.continuous_vs_static} (goal >= 2); ` +
          `p50 TTFT continuous ${c.p50_ttft_ms} ms vs static ${s.p50_ttft_ms} ms (goal: below static's)`,
        "",
      ].join("\n"),
    );
  }
}

await main();

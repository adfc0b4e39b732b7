/**
 * `npm run bench:vllm`: three servers of SmolLM2-135M-Instruct (float32, this
 * machine's CPU) measured one after another on one workload, on the OpenAI
 * completions route each serves:
 *
 * - `tsserve-vllm`: the shipped config (`engine: vllm`, compiled) through TorchServe 0.12,
 *   `/predictions/<model>/1.0/v1/completions`;
 * - `vllm-server`: vLLM's own OpenAI server (`python -m vllm.entrypoints.openai.api_server`),
 *   `/v1/completions`, with the same KV cache size;
 * - `tsserve-transformers`: the same config with `engine: transformers`.
 *
 * Workload: greedy completions of `--tokens` (64) tokens over 32 fixed prompts,
 * by 16 concurrent clients and by 1 client (`--single` requests), plain and
 * streamed. Figures: completion tokens/s, p50 time to first token (streamed),
 * and whether every server's texts equal vLLM's own server's.
 *
 *   npx tsx bench/vllm-compare.ts [--only tsserve-vllm,vllm-server] [--single 8] [--out bench/results/vllm.json]
 *
 * Writes the JSON, a markdown table beside it (`.md`) and its charts (bench/vllm-charts.ts: vllm-tokens.svg, vllm-ttft.svg).
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { ROOT, SMOLLM2_PATH as MODEL_PATH, serveTsserve, serveVllm, smollm2Config, type Served } from "./bench-servers.ts";
import { writeVllmCharts } from "./vllm-charts.ts";

const HANDLER = path.join(ROOT, "handlers", "smollm2-135m-instruct.ts");
const KV_CACHE_MB = 1024; // the vLLM engine's CPU default (vllm_args.DEFAULT_CPU_KV_CACHE_MB); the server gets the same

const { values: args } = parseArgs({
  options: {
    only: { type: "string" },
    tokens: { type: "string", default: "64" },
    single: { type: "string", default: "8" },
    clients: { type: "string", default: "16" },
    "port-base": { type: "string", default: "39380" },
    out: { type: "string", default: path.join(ROOT, "bench", "results", "vllm.json") },
  },
});
const TOKENS = Number(args.tokens);
const CLIENTS = Number(args.clients);
const SINGLE = Number(args.single);
const PORT = Number(args["port-base"]);

const TOPICS = [
  "The history of the printing press",
  "How a rainbow forms",
  "The rules of chess",
  "Why the sky is blue",
  "The life of Marie Curie",
  "How to bake bread",
  "The water cycle",
  "The causes of the French Revolution",
];
const PROMPTS = Array.from({ length: 32 }, (_, i) => `${TOPICS[i % 8]} (part ${Math.floor(i / 8) + 1}): here is a short explanation.`);

type Target = "tsserve-vllm" | "vllm-server" | "tsserve-transformers";
const TARGETS: Target[] = ["tsserve-vllm", "vllm-server", "tsserve-transformers"];

interface Run {
  tokens_per_s: number;
  completion_tokens: number;
  seconds: number;
  p50_ttft_ms?: number;
}
interface Figures {
  c16: Run;
  c16_stream: Run;
  c1: Run;
  c1_stream: Run;
  load_s: number;
  texts: string[];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2 : NaN;
};
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const say = (message: string) => void process.stderr.write(`bench:vllm: ${message}\n`);

interface Answer {
  text: string;
  tokens: number;
  ttft?: number;
}

async function complete(url: string, headers: Record<string, string>, prompt: string, stream: boolean): Promise<Answer> {
  const body = {
    model: MODEL_PATH,
    prompt,
    max_tokens: TOKENS,
    temperature: 0,
    stream,
    ...(stream ? { stream_options: { include_usage: true } } : {}),
  };
  const started = performance.now();
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}: ${(await response.text()).slice(0, 300)}`);
  if (!stream) {
    const json = (await response.json()) as { choices: { text: string }[]; usage: { completion_tokens: number } };
    return { text: json.choices[0]!.text, tokens: json.usage.completion_tokens };
  }
  let text = "",
    tokens = 0,
    ttft: number | undefined,
    buffer = "";
  const decoder = new TextDecoder();
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
      const event = buffer.slice(0, end).trim();
      buffer = buffer.slice(end + 2);
      if (!event.startsWith("data:") || event === "data: [DONE]") continue;
      const data = JSON.parse(event.slice(5)) as { choices?: { text?: string }[]; usage?: { completion_tokens: number } | null };
      const piece = data.choices?.[0]?.text ?? "";
      if (piece && ttft === undefined) ttft = performance.now() - started;
      text += piece;
      if (data.usage) tokens = data.usage.completion_tokens;
    }
  }
  return { text, tokens, ttft };
}

async function run(
  url: string,
  headers: Record<string, string>,
  clients: number,
  requests: number,
  stream: boolean,
): Promise<{ run: Run; answers: Answer[] }> {
  const answers: Answer[] = new Array(requests);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < requests) {
        const i = next++;
        answers[i] = await complete(url, headers, PROMPTS[i % PROMPTS.length]!, stream);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const tokens = answers.reduce((sum, a) => sum + a.tokens, 0);
  const ttfts = answers.map((a) => a.ttft).filter((t): t is number => t !== undefined);
  return {
    run: {
      tokens_per_s: round(tokens / seconds),
      completion_tokens: tokens,
      seconds: round(seconds, 2),
      ...(stream ? { p50_ttft_ms: round(median(ttfts)) } : {}),
    },
    answers,
  };
}

async function measure(url: string, headers: Record<string, string>, load_s: number): Promise<Figures> {
  await complete(url, headers, PROMPTS[0]!, false); // warm-up
  const c16 = await run(url, headers, CLIENTS, PROMPTS.length, false);
  const c16s = await run(url, headers, CLIENTS, PROMPTS.length, true);
  const c1 = await run(url, headers, 1, SINGLE, false);
  const c1s = await run(url, headers, 1, SINGLE, true);
  return {
    c16: c16.run,
    c16_stream: c16s.run,
    c1: c1.run,
    c1_stream: c1s.run,
    load_s: round(load_s),
    texts: c16.answers.map((a) => a.text),
  };
}

async function measured(served: Served, route: string): Promise<Figures> {
  try {
    return await measure(`${served.base}${route}`, served.headers, served.load_s);
  } finally {
    await served.stop();
  }
}

async function tsserve(engine: "vllm" | "transformers"): Promise<Figures> {
  const model = `smollm2-${engine}`;
  const config = smollm2Config(engine === "vllm" ? `engine: "vllm"\n  kv_cache_mb: ${KV_CACHE_MB}` : `engine: "${engine}"`);
  return measured(
    await serveTsserve(`bench-vllm-${engine}`, PORT, [{ name: model, handler: HANDLER, config }]),
    `/predictions/${model}/1.0/v1/completions`,
  );
}

async function vllmServer(): Promise<Figures> {
  return measured(await serveVllm(MODEL_PATH, PORT + 5, KV_CACHE_MB), "/v1/completions");
}

function table(figures: Partial<Record<Target, Figures>>): string {
  const rows = (Object.entries(figures) as [Target, Figures][]).map(
    ([name, f]) =>
      `| ${name} | ${f.c16.tokens_per_s} | ${f.c16_stream.tokens_per_s} | ${f.c16_stream.p50_ttft_ms} | ${f.c1.tokens_per_s} | ${f.c1_stream.tokens_per_s} | ${f.c1_stream.p50_ttft_ms} | ${f.load_s} |`,
  );
  return [
    "| server | 16 clients tok/s | 16 clients streamed tok/s | p50 TTFT at 16 (ms) | 1 client tok/s | 1 client streamed tok/s | p50 TTFT at 1 (ms) | start-up (s) |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows,
  ].join("\n");
}

async function main(): Promise<void> {
  const chosen = args.only ? (args.only.split(",") as Target[]) : TARGETS;
  // --only measures some servers again; the others keep the figures (and texts) of the last run.
  const previous =
    args.only && fs.existsSync(args.out!)
      ? (JSON.parse(fs.readFileSync(args.out!, "utf8")) as { figures: Partial<Record<Target, Figures>> })
      : undefined;
  const figures: Partial<Record<Target, Figures>> = { ...previous?.figures };
  for (const target of chosen) {
    say(`measuring ${target}`);
    figures[target] = target === "vllm-server" ? await vllmServer() : await tsserve(target === "tsserve-vllm" ? "vllm" : "transformers");
    say(`${target}: ${JSON.stringify({ ...figures[target], texts: undefined })}`);
  }
  const reference = figures["vllm-server"]?.texts;
  const ratios: Record<string, number> = {};
  const tv = figures["tsserve-vllm"],
    vs = figures["vllm-server"],
    tt = figures["tsserve-transformers"];
  if (tv && vs) {
    ratios.c16_vs_vllm_server = round(tv.c16.tokens_per_s / vs.c16.tokens_per_s, 2);
    ratios.c16_stream_vs_vllm_server = round(tv.c16_stream.tokens_per_s / vs.c16_stream.tokens_per_s, 2);
    ratios.c1_vs_vllm_server = round(tv.c1.tokens_per_s / vs.c1.tokens_per_s, 2);
    ratios.p50_ttft_c16_vs_vllm_server = round(tv.c16_stream.p50_ttft_ms! / vs.c16_stream.p50_ttft_ms!, 2);
  }
  if (tv && tt) ratios.c16_vs_tsserve_transformers = round(tv.c16.tokens_per_s / tt.c16.tokens_per_s, 2);
  const equalTexts = Object.fromEntries(
    (Object.entries(figures) as [Target, Figures][]).map(([name, f]) => [
      name,
      reference ? f.texts.filter((t, i) => t === reference[i]).length : null,
    ]),
  );
  const result = {
    date: new Date().toISOString(),
    machine: `${(await import("node:os")).cpus().length} cores`,
    workload: {
      prompts: PROMPTS.length,
      max_tokens: TOKENS,
      temperature: 0,
      clients: CLIENTS,
      single_client_requests: SINGLE,
      kv_cache_mb: KV_CACHE_MB,
    },
    figures,
    ratios,
    texts_equal_to_vllm_server: equalTexts,
  };
  fs.mkdirSync(path.dirname(args.out!), { recursive: true });
  fs.writeFileSync(args.out!, `${JSON.stringify(result, null, 2)}\n`);
  const md = [
    `# bench:vllm (${result.date}, ${result.machine}, SmolLM2-135M-Instruct float32, ${PROMPTS.length} greedy requests of ${TOKENS} tokens)`,
    "",
    table(figures),
    "",
    `Ratios: ${JSON.stringify(ratios)}`,
    `Texts equal to vLLM's own server (of ${PROMPTS.length}): ${JSON.stringify(equalTexts)}`,
    "",
  ].join("\n");
  fs.writeFileSync(args.out!.replace(/\.json$/, ".md"), md);
  console.log(md);
  console.log(`charts: ${writeVllmCharts(result, args.out!).join(", ")}`);
}

await main();

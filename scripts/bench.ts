/**
 * `npm run bench`: what writing the handler in TypeScript costs, measured side
 * by side in one run, written to bench/results/latest.{json,md} and
 * bench/results/latency.svg.
 *
 * - rpc: Python shim ↔ Node child round trips (bench/rpc_bench.py) per payload size.
 * - archive: `tsserve archive` vs `torch-model-archiver`, same config, CLI wall time.
 * - cold_start: register → first answer, both handlers on one TorchServe.
 * - e2e: handlers/llama-2-7b-chat.ts through tsserve vs bench/python_handler.py,
 *   the same TorchServe, tiny model, prompt and greedy parameters; rounds
 *   interleave the two (A B, then B A, ...) and the medians are reported.
 *
 * Options: --quick (a reduced run, for the smoke test), --out DIR, --rounds N,
 * --port-base P (default 38080: inference P, management P+1, metrics P+2, gRPC P+10/P+11).
 * Everything is bounded in count and time, loopback only, and TorchServe is
 * stopped at the end whatever happens.
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { readKeyFile } from "../src/client/keys.ts";
import { workPaths, type WorkPaths } from "../src/client/paths.ts";
import { loopbackProperties } from "../src/client/properties.ts";
import { connect, runningServer, startServer, stopServer } from "../src/client/torchserve-process.ts";
import type { TorchServeClient } from "../src/client/http.ts";
import {
  CONCURRENCY,
  VARIANTS,
  median,
  percentile,
  renderMarkdown,
  renderSvg,
  round,
  type BenchResults,
  type E2eFigures,
  type RpcFigures,
  type Variant,
} from "../bench/report.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const PYTHON = path.join(ROOT, ".venv", "bin", "python");
const TMA = path.join(ROOT, ".venv", "bin", "torch-model-archiver");
const CLI = path.join(ROOT, "bin", "tsserve.mjs");
const MODEL = { tsserve: "bench-tsserve", python: "bench-python" } as const;

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    out: { type: "string" },
    rounds: { type: "string" },
    "port-base": { type: "string", default: "38080" },
  },
});
const QUICK = args.quick!;
const OUT = path.resolve(args.out ?? path.join(ROOT, "bench", "results"));
const PORT_BASE = Number(args["port-base"]);
const P = {
  rpcSeconds: QUICK ? 0.2 : 2,
  rpcMaxRounds: QUICK ? 300 : 20_000,
  inProcessRequests: QUICK ? 20 : 400,
  archiveRepeats: QUICK ? 1 : 5,
  coldStartRepeats: QUICK ? 1 : 2,
  rounds: Number(args.rounds ?? (QUICK ? 1 : 5)),
  requestsPerRound: QUICK ? { 1: 5, 4: 8, 16: 16 } : { 1: 40, 4: 60, 16: 96 },
  warmupRequests: QUICK ? 2 : 10,
  cellTimeoutMs: 90_000,
  body: { prompt: "Alan Turing was a ", max_tokens: 8, temperature: 0, top_k: 1, seed: 0, logprobs: 0 },
};

const log = (line: string) => process.stderr.write(`bench: ${line}\n`);

function run(cmd: string, argv: string[], timeoutMs = 300_000): Promise<{ stdout: string; stderr: string; seconds: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, { cwd: ROOT, timeout: timeoutMs, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${path.basename(cmd)} ${argv.join(" ")} failed: ${error.message}\n${stderr}`));
      else resolve({ stdout, stderr, seconds: (performance.now() - started) / 1000 });
    });
  });
}

// ---------------------------------------------------------------- machine

async function machine(): Promise<Record<string, unknown>> {
  const cpuinfo = fs.existsSync("/proc/cpuinfo") ? fs.readFileSync("/proc/cpuinfo", "utf8") : "";
  const version = async (cmd: string, argv: string[]) => (await run(cmd, argv).catch(() => ({ stdout: "?" }))).stdout.trim();
  return {
    nproc: os.availableParallelism(),
    cpu_model: /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? "unknown",
    memory_gib: round(os.totalmem() / 2 ** 30, 1),
    os: `${os.type()} ${os.release()}`,
    node: process.versions.node,
    python: (await version(PYTHON, ["--version"])).replace(/^Python /, ""),
    torchserve: await version(PYTHON, ["-c", "import ts.version; print(ts.version.__version__)"]),
    torch: await version(PYTHON, ["-c", "import torch; print(torch.__version__)"]),
    load_average_start: os
      .loadavg()
      .map((v) => v.toFixed(2))
      .join(" "),
  };
}

// ---------------------------------------------------------------- rpc

async function rpc(scratch: string): Promise<Record<string, RpcFigures>> {
  const bundleDir = path.join(scratch, "echo-bundle");
  await run(process.execPath, [CLI, "bundle", "--handler", "test/fixtures/handlers/echo-handler.ts", "--out", bundleDir]);
  const { stdout } = await run(PYTHON, [
    path.join(ROOT, "bench", "rpc_bench.py"),
    "--bundle",
    path.join(bundleDir, "handler.mjs"),
    "--seconds",
    String(P.rpcSeconds),
    "--max-rounds",
    String(P.rpcMaxRounds),
  ]);
  return JSON.parse(stdout) as Record<string, RpcFigures>;
}

/** The bridge without TorchServe around it: bench/handler_bench.py, both handlers in one process. */
async function inProcess(scratch: string): Promise<Record<string, unknown>> {
  const bundleDir = path.join(scratch, "llama-bundle");
  await run(process.execPath, [CLI, "bundle", "--handler", "handlers/llama-2-7b-chat.ts", "--out", bundleDir]);
  const { stdout } = await run(PYTHON, [
    path.join(ROOT, "bench", "handler_bench.py"),
    "--bundle-dir",
    bundleDir,
    "--config",
    path.join(ROOT, "configs", "tiny-llama-2-chat.yaml"),
    "--requests",
    String(P.inProcessRequests),
    "--seconds",
    QUICK ? "10" : "120",
    "--max-tokens",
    String(P.body.max_tokens),
  ]);
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
}

// ---------------------------------------------------------------- archive

/**
 * The tiny model's config with an absolute model_path, so both archivers pack the very same file.
 * Both run TorchServe's synchronous worker: bench/python_handler.py is a classic handler that
 * answers from `handle`, and the bench measures what the bridge adds, like for like.
 */
function benchConfig(scratch: string): string {
  const yaml = fs
    .readFileSync(path.join(ROOT, "configs", "tiny-llama-2-chat.yaml"), "utf8")
    .replace(/model_path: .*/, `model_path: "${path.join(ROOT, ".cache", "tiny-llama")}"`)
    .replace(/^asyncCommunication: true$/m, "asyncCommunication: false");
  const file = path.join(scratch, "tiny-llama-2-chat.yaml");
  fs.writeFileSync(file, yaml);
  return file;
}

const tsserveArchive = (config: string, dir: string) =>
  run(process.execPath, [
    CLI,
    "archive",
    "--model-name",
    MODEL.tsserve,
    "--version",
    "1.0",
    "--handler",
    "handlers/llama-2-7b-chat.ts",
    "-c",
    config,
    "--export-path",
    dir,
    "-f",
  ]);
const tmaArchive = (config: string, dir: string) =>
  run(TMA, [
    "--model-name",
    MODEL.python,
    "--version",
    "1.0",
    "--handler",
    "bench/python_handler.py",
    "--config-file",
    config,
    "--export-path",
    dir,
    "-f",
  ]);

async function archives(config: string, scratch: string, store: string): Promise<BenchResults["archive"]> {
  const dir = path.join(scratch, "archives");
  fs.mkdirSync(dir, { recursive: true });
  const times = { tsserve: [] as number[], tma: [] as number[] };
  for (let i = 0; i < P.archiveRepeats; i++) {
    // A B, then B A: the first call of a pair never always lands on the same side.
    const order = i % 2 === 0 ? (["tsserve", "tma"] as const) : (["tma", "tsserve"] as const);
    for (const which of order)
      times[which].push((await (which === "tsserve" ? tsserveArchive(config, dir) : tmaArchive(config, dir))).seconds);
  }
  await tsserveArchive(config, store);
  await tmaArchive(config, store);
  return {
    tsserve_s: round(median(times.tsserve)),
    torch_model_archiver_s: round(median(times.tma)),
    runs: P.archiveRepeats,
    tsserve_does:
      "validates the config against the handler's schema, bundles the TypeScript handler with esbuild, generates the Python shim module, packs the tsserve_shim package, writes MANIFEST.json and the .mar (zip)",
    torch_model_archiver_does: "starts Python, copies the handler file and the config, writes MANIFEST.json and the .mar (zip)",
  };
}

// ---------------------------------------------------------------- TorchServe

function serverConfig(work: string): string {
  const file = path.join(work, "config.properties");
  // The per-minute system metrics collector is a process of its own: not what is measured.
  fs.writeFileSync(file, loopbackProperties(PORT_BASE, ["disable_system_metrics=true"]));
  return file;
}

/** A lean keep-alive HTTP client: the same few microseconds for both handlers, little CPU taken from the server. */
class Loader {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  constructor(
    private readonly port: number,
    private readonly token: string | undefined,
  ) {}

  predict(model: string, body: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const request = http.request(
        {
          host: "127.0.0.1",
          port: this.port,
          method: "POST",
          path: `/predictions/${model}`,
          agent: this.agent,
          headers: {
            "Content-Type": "application/json",
            "Content-Length": Buffer.byteLength(body),
            ...(this.token ? { Authorization: `Bearer ${this.token}` } : {}),
          },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on("data", (c: Buffer) => chunks.push(c));
          response.on("end", () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
          response.on("error", reject);
        },
      );
      request.setTimeout(60_000, () => request.destroy(new Error("request timed out")));
      request.on("error", reject);
      request.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

async function coldStart(client: TorchServeClient, loader: Loader, variant: Variant, body: string): Promise<number> {
  const started = performance.now();
  await client.registerModel({ url: `${MODEL[variant]}.mar`, modelName: MODEL[variant], initialWorkers: 1, synchronous: true });
  for (;;) {
    const answer = await loader.predict(MODEL[variant], body);
    if (answer.status === 200) break;
    if (performance.now() - started > 180_000)
      throw new Error(`${variant}: no answer within 180 s of register (${answer.status} ${answer.body.slice(0, 200)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return (performance.now() - started) / 1000;
}

interface Cell {
  latenciesMs: number[];
  /** Latency minus the engine's own raw_compute_time: TorchServe, the handler and (for tsserve) the bridge. */
  nonComputeMs: number[];
  seconds: number;
  errors: number;
}

/** `total` requests from `concurrency` closed-loop clients. */
async function load(loader: Loader, model: string, body: string, concurrency: number, total: number): Promise<Cell> {
  const latenciesMs: number[] = [];
  const nonComputeMs: number[] = [];
  let issued = 0;
  let errors = 0;
  const deadline = performance.now() + P.cellTimeoutMs;
  const started = performance.now();
  const worker = async () => {
    while (issued < total && performance.now() < deadline) {
      issued++;
      const one = await timedPredict(loader, model, body);
      if (!one) {
        errors++;
        continue;
      }
      latenciesMs.push(one.latency);
      if (one.nonCompute !== undefined) nonComputeMs.push(one.nonCompute);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { latenciesMs, nonComputeMs, seconds: (performance.now() - started) / 1000, errors };
}

/** One request's latency and its time outside the engine, or undefined for a failed request. */
async function timedPredict(loader: Loader, model: string, body: string): Promise<{ latency: number; nonCompute?: number } | undefined> {
  const t0 = performance.now();
  const answer = await loader.predict(model, body).catch(() => ({ status: 0, body: "" }));
  const latency = performance.now() - t0;
  if (answer.status !== 200) return undefined;
  const compute = (JSON.parse(answer.body) as { raw_compute_time?: number }).raw_compute_time;
  return { latency, nonCompute: typeof compute === "number" ? latency - compute * 1000 : undefined };
}

interface Pairs {
  /** tsserve − python, per pair of requests sent back to back. */
  latencyMs: number[];
  nonComputeMs: number[];
}

/**
 * Concurrency 1, both handlers request by request (A B, B A, A B, ...): a
 * drift of the machine's speed hits both alike, and each pair gives one
 * tsserve − python difference.
 */
async function loadInterleaved(loader: Loader, body: string, total: number): Promise<{ cells: Record<Variant, Cell>; pairs: Pairs }> {
  const cells = Object.fromEntries(
    VARIANTS.map((v) => [v, { latenciesMs: [], nonComputeMs: [], seconds: 0, errors: 0 }]),
  ) as unknown as Record<Variant, Cell>;
  const pairs: Pairs = { latencyMs: [], nonComputeMs: [] };
  const deadline = performance.now() + P.cellTimeoutMs;
  for (let i = 0; i < total && performance.now() < deadline; i++) {
    const order: Variant[] = i % 2 === 0 ? ["tsserve", "python"] : ["python", "tsserve"];
    const got: Partial<Record<Variant, { latency: number; nonCompute?: number }>> = {};
    for (const variant of order) {
      const started = performance.now();
      const one = await timedPredict(loader, MODEL[variant], body);
      const cell = cells[variant];
      cell.seconds += (performance.now() - started) / 1000;
      if (!one) {
        cell.errors++;
        continue;
      }
      got[variant] = one;
      cell.latenciesMs.push(one.latency);
      if (one.nonCompute !== undefined) cell.nonComputeMs.push(one.nonCompute);
    }
    if (got.tsserve && got.python) {
      pairs.latencyMs.push(got.tsserve.latency - got.python.latency);
      if (got.tsserve.nonCompute !== undefined && got.python.nonCompute !== undefined) {
        pairs.nonComputeMs.push(got.tsserve.nonCompute - got.python.nonCompute);
      }
    }
  }
  return { cells, pairs };
}

async function e2e(loader: Loader, body: string): Promise<BenchResults["e2e"]> {
  for (const variant of VARIANTS) for (let i = 0; i < P.warmupRequests; i++) await loader.predict(MODEL[variant], body);
  // Same work on both sides: greedy decoding of the same prompt gives the same text and token counts.
  const samples = Object.fromEntries(
    await Promise.all(VARIANTS.map(async (v) => [v, JSON.parse((await loader.predict(MODEL[v], body)).body)] as const)),
  );
  const same =
    samples.tsserve.choices?.[0]?.text === samples.python.choices?.[0]?.text &&
    JSON.stringify(samples.tsserve.usage) === JSON.stringify(samples.python.usage);
  if (!same)
    log(
      `warning: the two handlers answered differently:\n  tsserve ${JSON.stringify(samples.tsserve)}\n  python  ${JSON.stringify(samples.python)}`,
    );

  const perRound: Record<
    string,
    Record<Variant, { p50: number[]; p99: number[]; rps: number[]; nonCompute: number[]; errors: number; n: number }>
  > = {};
  for (const c of CONCURRENCY)
    perRound[c] = {
      tsserve: { p50: [], p99: [], rps: [], nonCompute: [], errors: 0, n: 0 },
      python: { p50: [], p99: [], rps: [], nonCompute: [], errors: 0, n: 0 },
    };
  const pairs: Pairs = { latencyMs: [], nonComputeMs: [] };
  for (let round_ = 0; round_ < P.rounds; round_++) {
    for (const c of CONCURRENCY) {
      const order: Variant[] = (round_ + CONCURRENCY.indexOf(c)) % 2 === 0 ? ["tsserve", "python"] : ["python", "tsserve"];
      const interleaved = c === 1 ? await loadInterleaved(loader, body, P.requestsPerRound[c]) : undefined;
      if (interleaved) {
        pairs.latencyMs.push(...interleaved.pairs.latencyMs);
        pairs.nonComputeMs.push(...interleaved.pairs.nonComputeMs);
      }
      for (const variant of order) {
        const cell = interleaved?.cells[variant] ?? (await load(loader, MODEL[variant], body, c, P.requestsPerRound[c]));
        const slot = perRound[c]![variant];
        slot.p50.push(percentile(cell.latenciesMs, 0.5));
        slot.p99.push(percentile(cell.latenciesMs, 0.99));
        slot.rps.push(cell.latenciesMs.length / cell.seconds);
        slot.nonCompute.push(percentile(cell.nonComputeMs, 0.5));
        slot.errors += cell.errors;
        slot.n += cell.latenciesMs.length;
      }
    }
    log(
      `e2e round ${round_ + 1}/${P.rounds}: c1 p50 tsserve ${perRound[1]!.tsserve.p50.at(-1)!.toFixed(2)} ms, python ${perRound[1]!.python.p50.at(-1)!.toFixed(2)} ms`,
    );
  }
  const byConcurrency: Record<string, Record<Variant, E2eFigures>> = {};
  for (const c of CONCURRENCY) {
    byConcurrency[c] = Object.fromEntries(
      VARIANTS.map((v) => {
        const s = perRound[c]![v];
        const figures: E2eFigures = {
          p50_ms: round(median(s.p50)),
          p99_ms: round(median(s.p99)),
          rps: round(median(s.rps), 2),
          non_compute_p50_ms: round(median(s.nonCompute)),
          requests: s.n,
          errors: s.errors,
        };
        return [v, figures];
      }),
    ) as unknown as Record<Variant, E2eFigures>;
  }
  return {
    by_concurrency: byConcurrency,
    overhead_p50_ms: round(byConcurrency[1]!.tsserve.p50_ms - byConcurrency[1]!.python.p50_ms),
    throughput_ratio_c16: round(byConcurrency[16]!.tsserve.rps / byConcurrency[16]!.python.rps),
    // Per pair of back-to-back requests at concurrency 1 (loadInterleaved): less noisy than a difference of medians.
    overhead_p50_ms_paired_median: round(median(pairs.latencyMs)),
    overhead_non_compute_p50_ms_paired_median: round(median(pairs.nonComputeMs)),
    // The engine's compute time varies more than the bridge costs on a busy machine: take it out.
    overhead_p50_ms_excluding_compute: round(byConcurrency[1]!.tsserve.non_compute_p50_ms! - byConcurrency[1]!.python.non_compute_p50_ms!),
    outputs_match: same,
    sample_text: samples.tsserve.choices?.[0]?.text,
  };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  fs.mkdirSync(OUT, { recursive: true });
  const work = path.join(ROOT, ".work", QUICK ? "bench-quick" : "bench");
  const env = { ...process.env, TSSERVE_WORK_DIR: work };
  const paths: WorkPaths = workPaths(env);
  if (runningServer(paths)) await stopServer({ paths });
  fs.rmSync(work, { recursive: true, force: true });
  const scratch = path.join(work, "scratch");
  const store = path.join(work, "model-store");
  fs.mkdirSync(scratch, { recursive: true });
  fs.mkdirSync(store, { recursive: true });
  const started = performance.now();

  const results: Partial<BenchResults> = { date: new Date().toISOString(), machine: await machine() };
  results.parameters = {
    mode: QUICK ? "quick" : "full",
    rpc_seconds_per_size: P.rpcSeconds,
    archive_repeats: P.archiveRepeats,
    cold_start_repeats: P.coldStartRepeats,
    e2e_rounds: P.rounds,
    e2e_requests_per_round: P.requestsPerRound,
    e2e_warmup_requests: P.warmupRequests,
    request: P.body,
    model: ".cache/tiny-llama (configs/tiny-llama-2-chat.yaml: 1 worker, batchSize 1, cpu_threads 1)",
    handlers: { tsserve: "handlers/llama-2-7b-chat.ts", python: "bench/python_handler.py" },
  };

  log("rpc round trips");
  results.rpc = await rpc(scratch);
  log(`rpc: ${JSON.stringify(results.rpc)}`);

  log("in-process handle: tsserve bridge vs python handler");
  const inProcessResult = await inProcess(scratch);
  log(`in-process: ${JSON.stringify(inProcessResult)}`);

  const config = benchConfig(scratch);
  log("archives");
  results.archive = await archives(config, scratch, store);
  log(
    `archive: ${JSON.stringify({ tsserve_s: results.archive.tsserve_s, torch_model_archiver_s: results.archive.torch_model_archiver_s })}`,
  );

  const stop = async () => {
    if (runningServer(paths)) {
      log("stopping TorchServe");
      await stopServer({ paths });
    }
  };
  const onSignal = () => void stop().finally(() => process.exit(130));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let loader: Loader | undefined;
  try {
    log(`starting TorchServe on 127.0.0.1:${PORT_BASE}-${PORT_BASE + 2} in ${work}`);
    await startServer({ paths, tsConfig: serverConfig(work), modelStore: store, onProgress: (m) => log(m) });
    const client = connect(paths);
    loader = new Loader(PORT_BASE, readKeyFile(paths.keyFile)?.inference.key);
    const body = JSON.stringify(P.body);

    const cold: Record<Variant, number[]> = { tsserve: [], python: [] };
    for (let i = 0; i < P.coldStartRepeats; i++) {
      const order: Variant[] = i % 2 === 0 ? ["tsserve", "python"] : ["python", "tsserve"];
      if (i > 0) for (const v of VARIANTS) await client.unregisterModel(MODEL[v]);
      for (const v of order) {
        cold[v].push(await coldStart(client, loader, v, body));
        log(`cold start ${v}: ${cold[v].at(-1)!.toFixed(2)} s`);
      }
    }
    results.cold_start = { tsserve_s: round(median(cold.tsserve)), python_s: round(median(cold.python)), runs: P.coldStartRepeats };

    log("e2e");
    results.e2e = await e2e(loader, body);
    results.e2e.in_process = inProcessResult;
  } finally {
    loader?.close();
    await stop();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  results.machine!.load_average_end = os
    .loadavg()
    .map((v) => v.toFixed(2))
    .join(" ");
  results.parameters.wall_s = round((performance.now() - started) / 1000, 1);

  const final = results as BenchResults;
  fs.writeFileSync(path.join(OUT, "latest.json"), `${JSON.stringify(final, null, 2)}\n`);
  fs.writeFileSync(path.join(OUT, "latest.md"), renderMarkdown(final));
  fs.writeFileSync(path.join(OUT, "latency.svg"), renderSvg(final));
  log(`wrote ${path.join(OUT, "latest.json")}, latest.md, latency.svg`);
  process.stdout.write(`${JSON.stringify({ rpc: final.rpc, e2e: final.e2e, archive: final.archive, cold_start: final.cold_start })}\n`);
}

main().catch((error) => {
  process.stderr.write(`bench: ${(error as Error).stack ?? error}\n`);
  process.exit(1);
});

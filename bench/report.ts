/**
 * The benchmark's figures as people read them: statistics helpers, the
 * Markdown table (bench/results/latest.md) and the SVG chart of latency
 * percentiles by concurrency. Plain string building, no chart library.
 */
import { groupedBarsSvg } from "./svg.ts";

export const SIZES = ["100B", "1KB", "100KB", "1MB"] as const;
export const CONCURRENCY = [1, 4, 16] as const;
export const VARIANTS = ["tsserve", "python"] as const;
export type Variant = (typeof VARIANTS)[number];

export interface RpcFigures {
  p50_us: number;
  p99_us: number;
  per_s: number;
  [extra: string]: number;
}

export interface E2eFigures {
  p50_ms: number;
  p99_ms: number;
  rps: number;
  [extra: string]: number;
}

export interface BenchResults {
  date: string;
  machine: Record<string, unknown>;
  parameters: Record<string, unknown>;
  rpc: Record<string, RpcFigures>;
  e2e: {
    by_concurrency: Record<string, Record<Variant, E2eFigures>>;
    overhead_p50_ms: number;
    throughput_ratio_c16: number;
    [extra: string]: unknown;
  };
  archive: { tsserve_s: number; torch_model_archiver_s: number; [extra: string]: unknown };
  cold_start: { tsserve_s: number; python_s: number; [extra: string]: unknown };
  [extra: string]: unknown;
}

/** The q-quantile of samples by the nearest-rank method (q in [0, 1]). */
export function percentile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export const median = (samples: readonly number[]): number => {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

export const round = (value: number, digits = 3): number => {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
};

const fmt = (value: number | undefined, digits = 2): string => (value === undefined || Number.isNaN(value) ? "–" : value.toFixed(digits));

export function renderMarkdown(r: BenchResults): string {
  const m = r.machine as Record<string, string | number>;
  const lines: string[] = [];
  lines.push(`# tsserve benchmark — ${r.date}`);
  lines.push("");
  lines.push(
    `Machine: ${m.cpu_model} × ${m.nproc} CPUs, Node ${m.node}, Python ${m.python}, TorchServe ${m.torchserve}${m.load_average_start ? `; load average at start ${m.load_average_start}` : ""}.`,
  );
  lines.push(`Parameters: \`${JSON.stringify(r.parameters)}\``);
  lines.push("");
  lines.push("## Bridge round trip (Python shim ↔ Node child, real framing on both sides)");
  lines.push("");
  lines.push("| payload | p50 µs | p99 µs | round trips/s |");
  lines.push("| --- | ---: | ---: | ---: |");
  for (const size of SIZES) {
    const f = r.rpc[size];
    if (f) lines.push(`| ${size} | ${fmt(f.p50_us, 1)} | ${fmt(f.p99_us, 1)} | ${fmt(f.per_s, 0)} |`);
  }
  lines.push("");
  lines.push("## End to end on one TorchServe: handlers/llama-2-7b-chat.ts (tsserve) vs bench/python_handler.py (native Python)");
  lines.push("");
  lines.push("| concurrency | tsserve p50 ms | python p50 ms | tsserve p99 ms | python p99 ms | tsserve req/s | python req/s |");
  lines.push("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const c of CONCURRENCY) {
    const row = r.e2e.by_concurrency[String(c)];
    if (!row) continue;
    lines.push(
      `| ${c} | ${fmt(row.tsserve.p50_ms)} | ${fmt(row.python.p50_ms)} | ${fmt(row.tsserve.p99_ms)} | ${fmt(row.python.p99_ms)} | ${fmt(row.tsserve.rps, 1)} | ${fmt(row.python.rps, 1)} |`,
    );
  }
  lines.push("");
  lines.push(`- overhead at p50, concurrency 1 (tsserve − python): **${fmt(r.e2e.overhead_p50_ms, 3)} ms**`);
  lines.push(`- throughput ratio at concurrency 16 (tsserve / python): **${fmt(r.e2e.throughput_ratio_c16, 3)}**`);
  const paired = r.e2e.overhead_p50_ms_paired_median;
  const pairedNonCompute = r.e2e.overhead_non_compute_p50_ms_paired_median;
  if (typeof paired === "number" && typeof pairedNonCompute === "number") {
    lines.push(
      `- concurrency 1, the two handlers request by request (A B, B A, …): median of the per-pair difference ${fmt(paired, 3)} ms; outside the engine's compute ${fmt(pairedNonCompute, 3)} ms`,
    );
  }
  const c1 = r.e2e.by_concurrency["1"];
  if (c1?.tsserve.non_compute_p50_ms !== undefined) {
    lines.push(
      `- latency minus the engine's compute time, p50 at concurrency 1: tsserve ${fmt(c1.tsserve.non_compute_p50_ms, 3)} ms, python ${fmt(c1.python.non_compute_p50_ms, 3)} ms`,
    );
  }
  const ip = r.e2e.in_process as Record<string, Record<string, number> | number> | undefined;
  if (ip && typeof ip.tsserve === "object" && typeof ip.python === "object") {
    lines.push(
      `- in process, without TorchServe (bench/handler_bench.py, ${ip.tsserve.requests} requests each): handle p50 tsserve ${fmt(ip.tsserve.p50_ms, 3)} ms vs python ${fmt(ip.python.p50_ms, 3)} ms; time outside the engine, paired p50 difference **${fmt(ip.overhead_non_compute_p50_ms as number, 3)} ms**; CPU per request (all processes) ${fmt(ip.tsserve.cpu_ms_per_request, 3)} vs ${fmt(ip.python.cpu_ms_per_request, 3)} ms`,
    );
  }
  lines.push("");
  lines.push("## Archive and cold start");
  lines.push("");
  lines.push("| | tsserve | python |");
  lines.push("| --- | ---: | ---: |");
  lines.push(
    `| archive (CLI, s): \`tsserve archive\` vs \`torch-model-archiver\` | ${fmt(r.archive.tsserve_s, 3)} | ${fmt(r.archive.torch_model_archiver_s, 3)} |`,
  );
  lines.push(`| cold start (register → first answer, s) | ${fmt(r.cold_start.tsserve_s, 2)} | ${fmt(r.cold_start.python_s, 2)} |`);
  lines.push("");
  lines.push(
    "Medians over interleaved rounds (A B, B A, …; at concurrency 1 request by request); see docs/performance.md for what each figure measures.",
  );
  lines.push("");
  return lines.join("\n");
}

/** Grouped bars: for each concurrency, p50 and p99 of both handlers (log scale: concurrency 1, tens of ms, and
 * 16, queueing, hundreds, stay readable on one chart). */
export function renderSvg(r: BenchResults): string {
  const series = [
    { variant: "tsserve" as const, key: "p50_ms" as const, label: "tsserve p50", color: "#2f6fdf" },
    { variant: "python" as const, key: "p50_ms" as const, label: "python p50", color: "#e08a1e" },
    { variant: "tsserve" as const, key: "p99_ms" as const, label: "tsserve p99", color: "#9bb9ef" },
    { variant: "python" as const, key: "p99_ms" as const, label: "python p99", color: "#f2c48d" },
  ];
  const machine = r.machine as Record<string, unknown>;
  return groupedBarsSvg({
    title: "End-to-end latency by concurrency (ms, log scale, lower is better)",
    subtitle: `${r.date.slice(0, 10)} · ${String(machine.cpu_model)} × ${String(machine.nproc)}`,
    groups: CONCURRENCY.map((c) => `concurrency ${c}`),
    series,
    values: CONCURRENCY.map((c) => series.map((s) => r.e2e.by_concurrency[String(c)]?.[s.variant]?.[s.key])),
    log: true,
  });
}

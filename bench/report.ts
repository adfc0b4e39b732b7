/**
 * The benchmark's figures as people read them: statistics helpers, the
 * Markdown table (bench/results/latest.md) and the SVG chart of latency
 * percentiles by concurrency. Plain string building, no chart library.
 */

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
  lines.push(`Machine: ${m.cpu_model} × ${m.nproc} CPUs, Node ${m.node}, Python ${m.python}, TorchServe ${m.torchserve}${m.load_average_start ? `; load average at start ${m.load_average_start}` : ""}.`);
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
    lines.push(`| ${c} | ${fmt(row.tsserve.p50_ms)} | ${fmt(row.python.p50_ms)} | ${fmt(row.tsserve.p99_ms)} | ${fmt(row.python.p99_ms)} | ${fmt(row.tsserve.rps, 1)} | ${fmt(row.python.rps, 1)} |`);
  }
  lines.push("");
  lines.push(`- overhead at p50, concurrency 1 (tsserve − python): **${fmt(r.e2e.overhead_p50_ms, 3)} ms**`);
  lines.push(`- throughput ratio at concurrency 16 (tsserve / python): **${fmt(r.e2e.throughput_ratio_c16, 3)}**`);
  const paired = r.e2e.overhead_p50_ms_paired_median;
  const pairedNonCompute = r.e2e.overhead_non_compute_p50_ms_paired_median;
  if (typeof paired === "number" && typeof pairedNonCompute === "number") {
    lines.push(`- concurrency 1, the two handlers request by request (A B, B A, …): median of the per-pair difference ${fmt(paired, 3)} ms; outside the engine's compute ${fmt(pairedNonCompute, 3)} ms`);
  }
  const c1 = r.e2e.by_concurrency["1"];
  if (c1?.tsserve.non_compute_p50_ms !== undefined) {
    lines.push(`- latency minus the engine's compute time, p50 at concurrency 1: tsserve ${fmt(c1.tsserve.non_compute_p50_ms, 3)} ms, python ${fmt(c1.python.non_compute_p50_ms, 3)} ms`);
  }
  const ip = r.e2e.in_process as Record<string, Record<string, number> | number> | undefined;
  if (ip && typeof ip.tsserve === "object" && typeof ip.python === "object") {
    lines.push(`- in process, without TorchServe (bench/handler_bench.py, ${ip.tsserve.requests} requests each): handle p50 tsserve ${fmt(ip.tsserve.p50_ms, 3)} ms vs python ${fmt(ip.python.p50_ms, 3)} ms; time outside the engine, paired p50 difference **${fmt(ip.overhead_non_compute_p50_ms as number, 3)} ms**; CPU per request (all processes) ${fmt(ip.tsserve.cpu_ms_per_request, 3)} vs ${fmt(ip.python.cpu_ms_per_request, 3)} ms`);
  }
  lines.push("");
  lines.push("## Archive and cold start");
  lines.push("");
  lines.push("| | tsserve | python |");
  lines.push("| --- | ---: | ---: |");
  lines.push(`| archive (CLI, s): \`tsserve archive\` vs \`torch-model-archiver\` | ${fmt(r.archive.tsserve_s, 3)} | ${fmt(r.archive.torch_model_archiver_s, 3)} |`);
  lines.push(`| cold start (register → first answer, s) | ${fmt(r.cold_start.tsserve_s, 2)} | ${fmt(r.cold_start.python_s, 2)} |`);
  lines.push("");
  lines.push("Medians over interleaved rounds (A B, B A, …; at concurrency 1 request by request); see docs/performance.md for what each figure measures.");
  lines.push("");
  return lines.join("\n");
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Grouped bars: for each concurrency, p50 and p99 of both handlers. */
export function renderSvg(r: BenchResults): string {
  const width = 720;
  const height = 400;
  const margin = { left: 64, right: 16, top: 48, bottom: 72 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const series = [
    { variant: "tsserve" as const, key: "p50_ms" as const, label: "tsserve p50", color: "#2f6fdf" },
    { variant: "python" as const, key: "p50_ms" as const, label: "python p50", color: "#e08a1e" },
    { variant: "tsserve" as const, key: "p99_ms" as const, label: "tsserve p99", color: "#9bb9ef" },
    { variant: "python" as const, key: "p99_ms" as const, label: "python p99", color: "#f2c48d" },
  ];
  const values = CONCURRENCY.flatMap((c) => series.map((s) => r.e2e.by_concurrency[String(c)]?.[s.variant]?.[s.key] ?? Number.NaN))
    .filter((v) => Number.isFinite(v) && v > 0);
  // Log scale: concurrency 1 (tens of ms) and 16 (queueing, hundreds) stay readable on one chart.
  const lo = 10 ** Math.floor(Math.log10(Math.min(1, ...values)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(10, ...values)));
  const y = (v: number) => margin.top + plotH - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH;
  const group = plotW / CONCURRENCY.length;
  const bar = (group * 0.7) / series.length;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">End-to-end latency by concurrency (ms, log scale, lower is better)</text>`);
  out.push(`<text x="${width / 2}" y="38" text-anchor="middle" fill="#555">${esc(`${r.date.slice(0, 10)} · ${String((r.machine as Record<string, unknown>).cpu_model)} × ${String((r.machine as Record<string, unknown>).nproc)}`)}</text>`);
  for (let decade = lo; decade <= hi; decade *= 10) {
    for (const step of [1, 2, 5]) {
      const v = decade * step;
      if (v > hi) break;
      out.push(`<line x1="${margin.left}" x2="${width - margin.right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="${step === 1 ? "#d0d0d0" : "#eeeeee"}"/>`);
      out.push(`<text x="${margin.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#333">${trimNumber(v)}</text>`);
    }
  }
  out.push(`<line x1="${margin.left}" x2="${margin.left}" y1="${margin.top}" y2="${margin.top + plotH}" stroke="#333"/>`);
  out.push(`<line x1="${margin.left}" x2="${width - margin.right}" y1="${margin.top + plotH}" y2="${margin.top + plotH}" stroke="#333"/>`);
  CONCURRENCY.forEach((c, gi) => {
    const x0 = margin.left + gi * group + group * 0.15;
    series.forEach((s, si) => {
      const v = r.e2e.by_concurrency[String(c)]?.[s.variant]?.[s.key];
      if (v === undefined || !Number.isFinite(v)) return;
      const x = x0 + si * bar;
      out.push(`<rect x="${x.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(bar - 2).toFixed(1)}" height="${(margin.top + plotH - y(v)).toFixed(1)}" fill="${s.color}"><title>${esc(`${s.label}, concurrency ${c}: ${v.toFixed(2)} ms`)}</title></rect>`);
      out.push(`<text x="${(x + bar / 2 - 1).toFixed(1)}" y="${(y(v) - 3).toFixed(1)}" text-anchor="middle" font-size="9" fill="#333">${v.toFixed(1)}</text>`);
    });
    out.push(`<text x="${(margin.left + gi * group + group / 2).toFixed(1)}" y="${margin.top + plotH + 18}" text-anchor="middle">concurrency ${c}</text>`);
  });
  series.forEach((s, i) => {
    const x = margin.left + i * 150;
    const ly = height - 22;
    out.push(`<rect x="${x}" y="${ly - 10}" width="12" height="12" fill="${s.color}"/>`);
    out.push(`<text x="${x + 18}" y="${ly}">${esc(s.label)}</text>`);
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

function trimNumber(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(2)));
}

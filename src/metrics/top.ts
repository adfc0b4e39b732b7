/**
 * What `tsserve top` shows: per model, from two scrapes of the metrics API, the rates over the time
 * between them (requests and tokens per second, errors), time-to-first-token quantiles of the
 * requests in that window (of all requests so far while none came), and the load now.
 */
import type { Sample } from "./exposition.ts";

export interface Scrape {
  at: number; // ms
  samples: Sample[];
}

interface TopRow {
  model: string;
  requestsPerS: number;
  tokensPerS: number;
  ttftP50: number | undefined;
  ttftP95: number | undefined;
  running: number;
  waiting: number;
  kvUsage: number;
  errors: number; // failures in the window
  errorsTotal: number;
}

function sumBy(samples: Sample[], name: string, model: string, where: (labels: Record<string, string>) => boolean = () => true): number {
  return samples.filter((s) => s.name === name && s.labels.model_name === model && where(s.labels)).reduce((sum, s) => sum + s.value, 0);
}

/** (upper bound, cumulative count) of a model's histogram, summed over its other labels. */
function buckets(samples: Sample[], family: string, model: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${family}_bucket` || s.labels.model_name !== model || s.labels.le === undefined) continue;
    const bound = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    out.set(bound, (out.get(bound) ?? 0) + s.value);
  }
  return out;
}

/** The q-quantile of a cumulative histogram, interpolated within its bucket as Prometheus's histogram_quantile does. */
export function quantile(q: number, cumulative: Map<number, number>): number | undefined {
  const bounds = [...cumulative.keys()].sort((a, b) => a - b);
  const total = cumulative.get(Infinity) ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const bound of bounds) {
    const count = cumulative.get(bound)!;
    if (count >= rank) {
      if (bound === Infinity) return lower;
      return lower + ((bound - lower) * (rank - below)) / Math.max(count - below, 1e-12);
    }
    lower = bound;
    below = count;
  }
  return lower;
}

function difference(now: Map<number, number>, before: Map<number, number>): Map<number, number> {
  return new Map([...now].map(([bound, count]) => [bound, count - (before.get(bound) ?? 0)]));
}

export function topRows(previous: Scrape | undefined, current: Scrape): TopRow[] {
  const models = [
    ...new Set(current.samples.filter((s) => s.name.startsWith("tsserve_") && s.labels.model_name).map((s) => s.labels.model_name!)),
  ].sort();
  const seconds = previous ? Math.max((current.at - previous.at) / 1000, 1e-3) : undefined;
  const before = previous?.samples ?? [];
  return models.map((model) => {
    const rate = (name: string) =>
      seconds === undefined ? 0 : Math.max(0, sumBy(current.samples, name, model) - sumBy(before, name, model)) / seconds;
    const ttftNow = buckets(current.samples, "tsserve_time_to_first_token_seconds", model);
    const ttftWindow = difference(ttftNow, buckets(before, "tsserve_time_to_first_token_seconds", model));
    const ttft = previous && (ttftWindow.get(Infinity) ?? 0) > 0 ? ttftWindow : ttftNow;
    const errorsTotal = sumBy(current.samples, "tsserve_request_failure_total", model);
    return {
      model,
      requestsPerS: rate("tsserve_request_success_total"),
      tokensPerS: rate("tsserve_generation_tokens_total"),
      ttftP50: quantile(0.5, ttft),
      ttftP95: quantile(0.95, ttft),
      running: sumBy(current.samples, "tsserve_num_requests_running", model),
      waiting: sumBy(current.samples, "tsserve_num_requests_waiting", model),
      kvUsage: Math.max(
        0,
        ...current.samples.filter((s) => s.name === "tsserve_kv_cache_usage_perc" && s.labels.model_name === model).map((s) => s.value),
      ),
      errors: previous ? Math.max(0, errorsTotal - sumBy(before, "tsserve_request_failure_total", model)) : 0,
      errorsTotal,
    };
  });
}

const HEADER = ["MODEL", "REQ/S", "TOK/S", "TTFT p50", "TTFT p95", "RUNNING", "WAITING", "KV", "ERRORS (total)"];

const seconds = (value: number | undefined) =>
  value === undefined ? "-" : value < 1 ? `${(value * 1000).toFixed(0)} ms` : `${value.toFixed(2)} s`;

export function renderTop(rows: TopRow[], source: string, at: Date): string {
  const table = [
    HEADER,
    ...rows.map((r) => [
      r.model,
      r.requestsPerS.toFixed(2),
      r.tokensPerS.toFixed(1),
      seconds(r.ttftP50),
      seconds(r.ttftP95),
      String(r.running),
      String(r.waiting),
      `${(r.kvUsage * 100).toFixed(1)}%`,
      `${r.errors} (${r.errorsTotal})`,
    ]),
  ];
  const widths = HEADER.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  const lines = table.map((row) =>
    row
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join("  ")
      .trimEnd(),
  );
  const empty = rows.length === 0 ? ["(no model has reported LLM metrics yet)"] : [];
  return [`tsserve top: ${source} at ${at.toISOString().slice(11, 19)} (q to quit)`, "", ...lines, ...empty, ""].join("\n");
}

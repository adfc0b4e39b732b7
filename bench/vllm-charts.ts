/**
 * bench:vllm's figures as SVG charts, beside its JSON: completion tokens/s and p50 time to first token, by
 * server and concurrency (docs/performance.md shows them). `npx tsx bench/vllm-charts.ts bench/results/vllm.json`
 * redraws them from a result already written; `npm run bench:vllm` draws them after each run.
 */
import fs from "node:fs";
import { pathToFileURL } from "node:url";
import { groupedBarsSvg, type BarSeries } from "./svg.ts";

interface Phase {
  tokens_per_s: number;
  p50_ttft_ms?: number;
}
export interface VllmResult {
  date: string;
  machine: string;
  workload: { prompts: number; max_tokens: number; clients: number };
  figures: Record<string, { c16: Phase; c16_stream: Phase; c1: Phase; c1_stream: Phase }>;
}

const COLORS: Record<string, string> = { "tsserve-vllm": "#2f6fdf", "vllm-server": "#e08a1e", "tsserve-transformers": "#7aa95c" };

export function vllmCharts(result: VllmResult): { name: string; svg: string }[] {
  const servers = Object.keys(result.figures);
  const series: BarSeries[] = servers.map((name) => ({ label: name, color: COLORS[name] ?? "#888888" }));
  const subtitle = `${result.date.slice(0, 10)} · ${result.machine} · SmolLM2-135M-Instruct float32 · ${result.workload.prompts} greedy requests of ${result.workload.max_tokens} tokens`;
  const phases = [
    ["c16", "16 clients"],
    ["c16_stream", "16 clients, streamed"],
    ["c1", "1 client"],
    ["c1_stream", "1 client, streamed"],
  ] as const;
  const tokens = groupedBarsSvg({
    title: "Completion tokens/s by server and concurrency (higher is better)",
    subtitle,
    series,
    groups: phases.map(([, label]) => label),
    values: phases.map(([key]) => servers.map((s) => result.figures[s]![key].tokens_per_s)),
  });
  const streamed = [
    ["c16_stream", "16 clients"],
    ["c1_stream", "1 client"],
  ] as const;
  const ttft = groupedBarsSvg({
    title: "Time to first token, p50 (ms, streamed, lower is better)",
    subtitle,
    series,
    groups: streamed.map(([, label]) => label),
    values: streamed.map(([key]) => servers.map((s) => result.figures[s]![key].p50_ttft_ms)),
    digits: 0,
  });
  return [
    { name: "vllm-tokens.svg", svg: tokens },
    { name: "vllm-ttft.svg", svg: ttft },
  ];
}

/** Writes the charts beside the result's JSON file; returns their paths. */
export function writeVllmCharts(result: VllmResult, jsonFile: string): string[] {
  return vllmCharts(result).map(({ name, svg }) => {
    const file = jsonFile.replace(/[^/]+$/, name);
    fs.writeFileSync(file, svg);
    return file;
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const file = process.argv[2] ?? "bench/results/vllm.json";
  console.log(writeVllmCharts(JSON.parse(fs.readFileSync(file, "utf8")) as VllmResult, file).join("\n"));
}

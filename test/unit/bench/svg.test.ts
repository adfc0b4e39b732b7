// The benchmarks' SVG charts: one bar per value, heights in proportion (or in log proportion), labels escaped,
// and bench:vllm's two charts drawn from its committed result.
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { groupedBarsSvg } from "../../../bench/svg.ts";
import { vllmCharts, type VllmResult } from "../../../bench/vllm-charts.ts";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const bars = (svg: string) =>
  [...svg.matchAll(/<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)" fill="(#\w+)"><title>([^<]*)<\/title>/g)].map((m) => ({
    y: Number(m[1]),
    height: Number(m[2]),
    color: m[3]!,
    title: m[4]!,
  }));

describe("groupedBarsSvg", () => {
  it("draws each value as a bar whose height is in proportion, skipping missing values", () => {
    const svg = groupedBarsSvg({
      title: "a < b & c",
      subtitle: "s",
      groups: ["one", "two"],
      series: [
        { label: "x", color: "#111111" },
        { label: "y", color: "#222222" },
      ],
      values: [
        [10, 20],
        [40, undefined],
      ],
    });
    expect(svg).toMatch(/^<svg [\s\S]*<\/svg>\n$/);
    expect(svg).toContain("a &lt; b &amp; c");
    const drawn = bars(svg);
    expect(drawn.map((b) => b.title)).toEqual(["x, one: 10", "y, one: 20", "x, two: 40"]);
    expect(drawn[1]!.height / drawn[0]!.height).toBeCloseTo(2, 1);
    expect(drawn[2]!.height / drawn[0]!.height).toBeCloseTo(4, 1);
  });

  it("on a log scale, a tenfold value is one decade taller", () => {
    const svg = groupedBarsSvg({
      title: "t",
      subtitle: "s",
      groups: ["g"],
      series: [
        { label: "a", color: "#1" },
        { label: "b", color: "#2" },
        { label: "c", color: "#3" },
      ],
      values: [[10, 100, 1000]],
      log: true,
    });
    const [a, b, c] = bars(svg);
    expect(b!.height - a!.height).toBeCloseTo(c!.height - b!.height, 0);
  });

  it("draws bench:vllm's tokens/s and TTFT from its result", () => {
    const result = JSON.parse(fs.readFileSync(path.join(ROOT, "bench", "results", "vllm.json"), "utf8")) as VllmResult;
    const [tokens, ttft] = vllmCharts(result);
    expect(tokens!.name).toBe("vllm-tokens.svg");
    expect(bars(tokens!.svg).find((b) => b.title.startsWith("tsserve-vllm, 16 clients:"))!.title).toBe(
      `tsserve-vllm, 16 clients: ${result.figures["tsserve-vllm"]!.c16.tokens_per_s}`,
    );
    expect(bars(ttft!.svg)).toHaveLength(Object.keys(result.figures).length * 2);
    for (const chart of [tokens!, ttft!]) expect(fs.readFileSync(path.join(ROOT, "bench", "results", chart.name), "utf8")).toBe(chart.svg);
  });
});

// The LLM metrics' one definition: what TorchServe's metrics config declares (TorchServe's own defaults kept)
// and how a histogram is published as the counter families Prometheus reads as one.
import path from "node:path";
import YAML from "yaml";
import { describe, expect, it } from "vitest";
import { LLM_METRICS, publishedMetrics, torchserveMetricsConfig } from "../../../src/metrics/llm-metrics.ts";
import { torchserveDefaultMetricsYaml } from "../../../src/metrics/torchserve-defaults.ts";

const ROOT = path.resolve(import.meta.dirname, "../../..");
type Spec = { name: string; unit: string; dimensions: string[] };
type Config = Record<"ts_metrics" | "model_metrics", Record<string, Spec[]>>;

describe("the LLM metrics", () => {
  const defaults = YAML.parse(torchserveDefaultMetricsYaml(path.join(ROOT, ".venv")), { merge: true }) as Config;
  const config = YAML.parse(torchserveMetricsConfig(torchserveDefaultMetricsYaml(path.join(ROOT, ".venv")))) as Config;

  it("keep every metric of TorchServe's own config, and add each published family to model_metrics", () => {
    expect(config.ts_metrics).toEqual(defaults.ts_metrics);
    for (const [type, specs] of Object.entries(defaults.model_metrics))
      expect(config.model_metrics[type]!.slice(0, specs.length)).toEqual(specs);
    const added = [...config.model_metrics.counter!, ...config.model_metrics.gauge!].filter((s) => s.name.startsWith("tsserve_"));
    expect(added.map((s) => s.name).sort()).toEqual(
      publishedMetrics()
        .map((m) => m.name)
        .sort(),
    );
  });

  it("publish a histogram as _bucket (with le), _sum and _count counters, labelled by model_name like vLLM's", () => {
    const ttft = publishedMetrics().filter((m) => m.name.startsWith("tsserve_time_to_first_token_seconds"));
    expect(ttft).toEqual([
      { name: "tsserve_time_to_first_token_seconds_bucket", type: "counter", unit: "Seconds", dimensions: ["model_name", "le"] },
      { name: "tsserve_time_to_first_token_seconds_sum", type: "counter", unit: "Seconds", dimensions: ["model_name"] },
      { name: "tsserve_time_to_first_token_seconds_count", type: "counter", unit: "Count", dimensions: ["model_name"] },
    ]);
    for (const metric of LLM_METRICS) {
      expect(metric.name).toMatch(/^tsserve_[a-z0-9_]+$/);
      if (metric.kind === "counter") expect(metric.name).toMatch(/_total$/);
      if (metric.buckets) expect([...metric.buckets].sort((a, b) => a - b)).toEqual(metric.buckets);
    }
  });
});

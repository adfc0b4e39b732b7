/**
 * The LLM serving metrics every tsserve model reports, defined once: the Python shim reads them
 * (python_shim/tsserve_shim/llm-metrics.json) to record and publish, and TorchServe's metrics config
 * (configs/torchserve/metrics.yaml) declares them. Names are vLLM's under a `tsserve_` prefix and its label
 * `model_name`, so a vLLM dashboard needs only the prefix changed; histograms use vLLM's buckets.
 *
 * TorchServe's own histograms have fixed buckets, so a histogram is published as the three counter
 * families Prometheus reads as one: `_bucket` (label `le`, cumulative), `_sum` and `_count`.
 */
import YAML from "yaml";

type MetricKind = "counter" | "gauge" | "histogram";

interface LlmMetric {
  name: string;
  kind: MetricKind;
  unit: string;
  help: string;
  /**
   * Labels besides `model_name` (TorchServe adds `Hostname`). `stage` is the handler stage of the model call
   * (GenerateRequest.stage: AgentInstruct's `explanation` and `answer`; `main` for a handler's one call); the
   * engine's latency histograms and gauges are per model, as vLLM's are.
   */
  labels: string[];
  buckets?: number[];
}

// vLLM 0.32's bucket boundaries (vllm/v1/metrics/buckets.py).
const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
const ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const REQUEST_LATENCY_BUCKETS = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];

export const LLM_METRICS: readonly LlmMetric[] = [
  {
    name: "tsserve_time_to_first_token_seconds",
    kind: "histogram",
    unit: "Seconds",
    help: "Time from a request's arrival at the engine to its first generated token.",
    labels: [],
    buckets: TTFT_BUCKETS,
  },
  {
    name: "tsserve_inter_token_latency_seconds",
    kind: "histogram",
    unit: "Seconds",
    help: "Time between two generated tokens of a sequence.",
    labels: [],
    buckets: ITL_BUCKETS,
  },
  {
    name: "tsserve_e2e_request_latency_seconds",
    kind: "histogram",
    unit: "Seconds",
    help: "Time from a request's arrival at the engine to its last token.",
    labels: [],
    buckets: REQUEST_LATENCY_BUCKETS,
  },
  {
    name: "tsserve_request_queue_time_seconds",
    kind: "histogram",
    unit: "Seconds",
    help: "Time a request waited in the engine before its prefill.",
    labels: [],
    buckets: REQUEST_LATENCY_BUCKETS,
  },
  {
    name: "tsserve_num_requests_running",
    kind: "gauge",
    unit: "Count",
    help: "Sequences in the engine's running batch.",
    labels: ["worker"],
  },
  {
    name: "tsserve_num_requests_waiting",
    kind: "gauge",
    unit: "Count",
    help: "Sequences waiting to join the running batch.",
    labels: ["worker"],
  },
  {
    name: "tsserve_kv_cache_usage_perc",
    kind: "gauge",
    unit: "Percent",
    help: "Share of the KV cache in use, 0 to 1.",
    labels: ["worker"],
  },
  {
    name: "tsserve_prefix_cache_queries_total",
    kind: "counter",
    unit: "Count",
    help: "Prompt tokens looked up in the prefix cache.",
    labels: ["stage"],
  },
  {
    name: "tsserve_prefix_cache_hits_total",
    kind: "counter",
    unit: "Count",
    help: "Prompt tokens found in the prefix cache.",
    labels: ["stage"],
  },
  { name: "tsserve_prompt_tokens_total", kind: "counter", unit: "Count", help: "Prompt tokens of answered requests.", labels: ["stage"] },
  {
    name: "tsserve_generation_tokens_total",
    kind: "counter",
    unit: "Count",
    help: "Tokens generated for answered requests.",
    labels: ["stage"],
  },
  {
    name: "tsserve_request_success_total",
    kind: "counter",
    unit: "Count",
    help: "Sequences finished, by finish reason.",
    labels: ["finished_reason", "stage"],
  },
  {
    name: "tsserve_request_failure_total",
    kind: "counter",
    unit: "Count",
    help: "Requests the engine refused or failed, by HTTP status.",
    labels: ["status", "stage"],
  },
];

/** What TorchServe is told of one published family: a histogram is three counters. */
interface PublishedMetric {
  name: string;
  type: "counter" | "gauge";
  unit: string;
  dimensions: string[];
}

export function publishedMetrics(metrics: readonly LlmMetric[] = LLM_METRICS): PublishedMetric[] {
  return metrics.flatMap((metric): PublishedMetric[] => {
    const dimensions = ["model_name", ...metric.labels];
    if (metric.kind !== "histogram") return [{ name: metric.name, type: metric.kind, unit: metric.unit, dimensions }];
    return [
      { name: `${metric.name}_bucket`, type: "counter", unit: metric.unit, dimensions: [...dimensions, "le"] },
      { name: `${metric.name}_sum`, type: "counter", unit: metric.unit, dimensions },
      { name: `${metric.name}_count`, type: "counter", unit: "Count", dimensions },
    ];
  });
}

/** The manifest the Python shim reads (python_shim/tsserve_shim/llm-metrics.json). */
export function llmMetricsManifest(): { metrics: readonly LlmMetric[]; published: PublishedMetric[] } {
  return { metrics: LLM_METRICS, published: publishedMetrics() };
}

/**
 * TorchServe's metrics config: its own defaults (the installed TorchServe's ts/configs/metrics.yaml, as text)
 * with tsserve's metrics added to `model_metrics` (the frontend adds `Hostname` to each).
 */
export function torchserveMetricsConfig(defaultsYaml: string): string {
  const config = YAML.parse(defaultsYaml, { merge: true }) as Record<string, Record<string, unknown[]> | undefined>;
  const model = config.model_metrics ?? {};
  config.model_metrics = model;
  for (const metric of publishedMetrics()) {
    const list = model[metric.type] ?? [];
    model[metric.type] = list;
    list.push({ name: metric.name, unit: metric.unit, dimensions: metric.dimensions });
  }
  return `# Generated by \`npm run schemas\` from src/metrics/llm-metrics.ts and TorchServe's own ts/configs/metrics.yaml: do not edit.\n${YAML.stringify(config, { aliasDuplicateObjects: false })}`;
}

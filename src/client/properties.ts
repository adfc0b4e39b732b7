/** TorchServe's config.properties: the keys tsserve needs, read the way TorchServe reads them. */
import fs from "node:fs";
import path from "node:path";
import { PACKAGE_ROOT } from "../package-root.ts";

export type Properties = Map<string, string>;

/** Java-properties subset TorchServe uses: `key=value` or `key: value`, `#`/`!` comments, `\` continuations. */
export function parseProperties(text: string): Properties {
  const props: Properties = new Map();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!.trim();
    if (line === "" || line.startsWith("#") || line.startsWith("!")) continue;
    while (line.endsWith("\\") && i + 1 < lines.length) line = line.slice(0, -1) + lines[++i]!.trim();
    const match = /^([^=:\s]+)\s*[=:\s]\s*(.*)$/.exec(line);
    if (match) props.set(match[1]!, match[2]!);
  }
  return props;
}

export function readProperties(file: string): Properties {
  return parseProperties(fs.readFileSync(file, "utf8"));
}

export interface ServerAddresses {
  inference: string;
  management: string;
  metrics: string;
}

/** TorchServe's own defaults. */
const DEFAULT_ADDRESSES: ServerAddresses = {
  inference: "http://127.0.0.1:8080",
  management: "http://127.0.0.1:8081",
  metrics: "http://127.0.0.1:8082",
};

function normalize(address: string): string {
  // TorchServe accepts 0.0.0.0 to listen everywhere; a client connects over loopback.
  return address.replace(/\/+$/, "").replace("://0.0.0.0", "://127.0.0.1");
}

export function addressesFrom(props: Properties | undefined): ServerAddresses {
  return {
    inference: normalize(props?.get("inference_address") ?? DEFAULT_ADDRESSES.inference),
    management: normalize(props?.get("management_address") ?? DEFAULT_ADDRESSES.management),
    metrics: normalize(props?.get("metrics_address") ?? DEFAULT_ADDRESSES.metrics),
  };
}

export function isTrue(value: string | undefined): boolean {
  return value?.trim().toLowerCase() === "true";
}

/** Request bodies tsserve's servers accept: a prompt of a few MB, not a flood. */
export const MAX_REQUEST_SIZE = 10 * 1024 * 1024;
/** Response bodies: an evaluation request (many prompts, echo, top logprobs) passes TorchServe's 6.5 MB. */
export const MAX_RESPONSE_SIZE = 32 * 1024 * 1024;

/**
 * The sizes and archive sources every config.properties tsserve writes sets.
 * A response over max_response_size makes the frontend drop the worker and
 * every request on it, so the shim reads the value and answers 413 instead.
 * Archives are registered by their name in the model store (`tsserve register`
 * copies them there), which TorchServe allows whatever allowed_urls says; its
 * pattern here matches no URL, so a management-key holder cannot make the
 * server fetch http(s):// addresses or copy file:// paths into the store.
 */
export function limitProperties(): string[] {
  return [`max_request_size=${MAX_REQUEST_SIZE}`, `max_response_size=${MAX_RESPONSE_SIZE}`, "allowed_urls=^$"];
}

/**
 * A config.properties for a TorchServe of its own on loopback: inference on
 * `portBase`, management +1, metrics +2, gRPC +10/+11, the model API on,
 * no per-model installs (the packages are in .venv), the LLM metrics on the
 * metrics API (`metricsProperties`), the limits of
 * `limitProperties` (`extra` comes last, so it can override them). For the demo, the
 * benchmarks and the end-to-end suites, so that runs on other bases never meet.
 */
export function loopbackProperties(portBase: number, extra: readonly string[] = []): string {
  return [
    ...loopbackAddresses(portBase),
    "enable_model_api=true",
    "install_py_dep_per_model=false",
    ...metricsProperties(path.join(PACKAGE_ROOT, "configs", "torchserve", "metrics.yaml")),
    ...limitProperties(),
    ...extra,
    "",
  ].join("\n");
}

/**
 * The metrics API in Prometheus format, with TorchServe's metrics config at `metricsConfig` (configs/torchserve/metrics.yaml:
 * TorchServe's own metrics and tsserve's LLM metrics, src/metrics/llm-metrics.ts). Metrics a handler adds
 * of its own are registered as they come.
 */
export function metricsProperties(metricsConfig: string): string[] {
  return ["metrics_mode=prometheus", `metrics_config=${metricsConfig}`, "model_metrics_auto_detect=true"];
}

/** The keys that say where TorchServe listens. */
const ADDRESS_KEYS = ["inference_address", "management_address", "metrics_address", "grpc_inference_port", "grpc_management_port"];

/**
 * A TorchServe config (the text of config.properties) moved to `portBase`:
 * inference on the base, management +1, metrics +2, gRPC inference +10 and
 * management +11, on loopback; every other line kept as it is.
 */
export function withPortBase(text: string, portBase: number): string {
  const kept = text.split(/\r?\n/).filter((line) => !ADDRESS_KEYS.some((key) => new RegExp(`^\\s*${key}\\s*[=:\\s]`).test(line)));
  return [...loopbackAddresses(portBase), ...kept].join("\n");
}

/** Where TorchServe listens on loopback from `portBase`: inference, management +1, metrics +2, gRPC +10 and +11. */
function loopbackAddresses(portBase: number): string[] {
  return [
    `inference_address=http://127.0.0.1:${portBase}`,
    `management_address=http://127.0.0.1:${portBase + 1}`,
    `metrics_address=http://127.0.0.1:${portBase + 2}`,
    `grpc_inference_port=${portBase + 10}`,
    `grpc_management_port=${portBase + 11}`,
  ];
}

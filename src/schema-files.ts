/**
 * The generated files committed beside the Python shim (JSON Schemas, the LLM
 * metrics) and TorchServe's metrics config, and how each is rendered. It sits
 * above the folders whose definitions it collects (protocol, config,
 * completions, metrics), so that none of them imports another for this.
 */
import path from "node:path";
import { renderProtocolSchema } from "./protocol/protocol-json-schema.ts";
import { modelConfigJsonSchema } from "./config/json-schema.ts";
import { completionRequestJsonSchema } from "./completions/request-json-schema.ts";
import { llmMetricsManifest, torchserveMetricsConfig } from "./metrics/llm-metrics.ts";
import { torchserveDefaultMetricsYaml } from "./metrics/torchserve-defaults.ts";
import { PACKAGE_ROOT } from "./package-root.ts";

const pretty = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

export function committedSchemas(): { file: string; render: () => string }[] {
  return [
    { file: "python_shim/tsserve_shim/protocol.schema.json", render: renderProtocolSchema },
    { file: "python_shim/tsserve_shim/model-config.schema.json", render: () => pretty(modelConfigJsonSchema()) },
    { file: "python_shim/tsserve_shim/completion-request.schema.json", render: () => pretty(completionRequestJsonSchema()) },
    { file: "python_shim/tsserve_shim/llm-metrics.json", render: () => pretty(llmMetricsManifest()) },
    {
      file: "configs/torchserve/metrics.yaml",
      render: () => torchserveMetricsConfig(torchserveDefaultMetricsYaml(path.join(PACKAGE_ROOT, ".venv"))),
    },
  ];
}

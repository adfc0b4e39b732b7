/**
 * The JSON Schema files committed beside the Python shim, and how each is
 * rendered. It sits above the folders whose schemas it collects (protocol,
 * config, completions), so that none of them imports another for this.
 */
import { renderProtocolSchema } from "./protocol/protocol-json-schema.ts";
import { modelConfigJsonSchema } from "./config/json-schema.ts";
import { completionRequestJsonSchema } from "./completions/request-json-schema.ts";

const pretty = (value: unknown) => JSON.stringify(value, null, 2) + "\n";

export function committedSchemas(): { file: string; render: () => string }[] {
  return [
    { file: "python_shim/tsserve_shim/protocol.schema.json", render: renderProtocolSchema },
    { file: "python_shim/tsserve_shim/model-config.schema.json", render: () => pretty(modelConfigJsonSchema()) },
    { file: "python_shim/tsserve_shim/completion-request.schema.json", render: () => pretty(completionRequestJsonSchema()) },
  ];
}

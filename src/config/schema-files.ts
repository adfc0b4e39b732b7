/** The JSON Schema files committed beside the Python shim, and how each is rendered. */
import { renderProtocolSchema } from "../protocol/json-schema.ts";
import { exportJsonSchemas } from "./json-schema.ts";

const pretty = (value: unknown) => JSON.stringify(value, null, 2) + "\n";

export function committedSchemas(): { file: string; render: () => string }[] {
  return [
    { file: "python_shim/tsserve_shim/protocol.schema.json", render: renderProtocolSchema },
    { file: "python_shim/tsserve_shim/model-config.schema.json", render: () => pretty(exportJsonSchemas().modelConfig) },
    { file: "python_shim/tsserve_shim/completion-request.schema.json", render: () => pretty(exportJsonSchemas().completionRequest) },
  ];
}

// Writes the JSON Schemas derived from the zod definitions, for the Python shim.
import { writeFileSync } from "node:fs";
import { renderProtocolSchema } from "../src/protocol/json-schema.ts";

export const PROTOCOL_SCHEMA_FILE = new URL("../python_shim/tsserve_shim/protocol.schema.json", import.meta.url);

writeFileSync(PROTOCOL_SCHEMA_FILE, renderProtocolSchema());
console.log("wrote python_shim/tsserve_shim/protocol.schema.json");

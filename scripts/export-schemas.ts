// Writes the JSON Schemas derived from the zod definitions, for the Python
// shim and its tests. `npm run schemas`; a vitest test fails when they are stale.
import { writeFileSync } from "node:fs";
import { committedSchemas } from "../src/schema-files.ts";

for (const { file, render } of committedSchemas()) {
  writeFileSync(new URL(`../${file}`, import.meta.url), render());
  console.log(`wrote ${file}`);
}

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { committedSchemas } from "../../src/schema-files.ts";

describe("committed JSON Schemas", () => {
  it.each(committedSchemas())(
    "$file is what the zod definitions export today (run `npm run schemas` after a change)",
    ({ file, render }) => {
      expect(readFileSync(file, "utf8")).toBe(render());
    },
  );
});

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { renderProtocolSchema } from "../../src/protocol/json-schema.ts";

describe("protocol.schema.json", () => {
  it("is what the zod definitions export today (run `npm run schemas` after changing src/protocol)", () => {
    const committed = readFileSync("python_shim/tsserve_shim/protocol.schema.json", "utf8");
    expect(committed).toBe(renderProtocolSchema());
  });
});

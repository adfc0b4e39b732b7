import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";

const tsserve = (...args: string[]) =>
  spawnSync(process.execPath, ["bin/tsserve.mjs", "restart-workers", ...args], { encoding: "utf8", timeout: 60_000 });

describe("tsserve restart-workers (usage; the restart itself runs on a real TorchServe in continuous-batching.test.ts)", () => {
  it("exits 2 with its usage when NAME is missing", () => {
    const result = tsserve();
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("expected one NAME");
    expect(result.stderr).toContain("Usage: tsserve restart-workers NAME [--timeout SECONDS]");
  });

  it.each(["0", "-3", "soon"])("exits 2 naming --timeout %s", (value) => {
    const result = tsserve("some-model", `--timeout=${value}`);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`--timeout ${value}: must be a number of seconds above 0`);
  });
});

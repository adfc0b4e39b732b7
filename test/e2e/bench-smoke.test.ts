// `npm run bench` end to end in its reduced mode (--quick): every figure the
// issue names is written, the report and chart exist, and the benchmark's
// TorchServe (its own working folder, ports 38080-38082 unless
// TSSERVE_BENCH_PORT_BASE says otherwise) is gone afterwards.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { workPaths } from "../../src/client/paths.ts";
import { runningServer } from "../../src/client/torchserve-process.ts";
import { allProcs, stillRunning } from "../../src/client/procs.ts";
import { ROOT, run } from "./helpers.ts";

const PORT_BASE = process.env.TSSERVE_BENCH_PORT_BASE ?? "38080";

describe("npm run bench --quick", () => {
  it("writes latest.json with the issue's keys, latest.md and the chart, and stops its TorchServe", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "tsserve-bench-"));
    const tsx = path.join(ROOT, "node_modules", ".bin", "tsx");
    const result = await run(tsx, ["scripts/bench.ts", "--quick", "--out", out, "--port-base", PORT_BASE], { timeoutMs: 170_000 });
    expect(result.code, (result.timedOut ? "no exit within 170 s: killed\n" : "") + result.stderr).toBe(0);

    const r = JSON.parse(fs.readFileSync(path.join(out, "latest.json"), "utf8"));
    for (const size of ["100B", "1KB", "100KB", "1MB"]) {
      for (const key of ["p50_us", "p99_us", "per_s"]) expect(r.rpc[size][key], `rpc.${size}.${key}`).toBeGreaterThan(0);
    }
    for (const c of ["1", "4", "16"]) {
      for (const variant of ["tsserve", "python"]) {
        for (const key of ["p50_ms", "p99_ms", "rps"])
          expect(r.e2e.by_concurrency[c][variant][key], `e2e.${c}.${variant}.${key}`).toBeGreaterThan(0);
        expect(r.e2e.by_concurrency[c][variant].errors).toBe(0);
      }
    }
    expect(typeof r.e2e.overhead_p50_ms).toBe("number");
    expect(r.e2e.throughput_ratio_c16).toBeGreaterThan(0);
    expect(r.e2e.outputs_match).toBe(true);
    expect(r.archive.tsserve_s).toBeGreaterThan(0);
    expect(r.archive.torch_model_archiver_s).toBeGreaterThan(0);
    expect(r.cold_start.tsserve_s).toBeGreaterThan(0);
    expect(r.cold_start.python_s).toBeGreaterThan(0);
    expect(r.machine.nproc).toBeGreaterThan(0);
    expect(typeof r.date).toBe("string");

    expect(fs.readFileSync(path.join(out, "latest.md"), "utf8")).toContain("| concurrency |");
    expect(fs.readFileSync(path.join(out, "latency.svg"), "utf8")).toMatch(/^<svg [\s\S]*<\/svg>\n$/);

    const paths = workPaths({ ...process.env, TSSERVE_WORK_DIR: path.join(ROOT, ".work", "bench-quick") });
    expect(runningServer(paths)).toBeUndefined();
    expect(
      allProcs()
        .filter(stillRunning)
        .filter((p) => p.cmdline.includes(paths.tmp))
        .map((p) => p.cmdline),
    ).toEqual([]);
    fs.rmSync(out, { recursive: true, force: true });
  }, 180_000);
});

// A metrics config is checked before TorchServe starts (it would start without metrics and fail every
// request): the shipped one passes, and each problem is named with its file and line.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { metricsConfigProblem } from "../../../src/metrics/check-config.ts";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "metrics-config-"));
const write = (name: string, text: string) => {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
};

describe("metricsConfigProblem", () => {
  it("passes the shipped config and TorchServe's own", () => {
    expect(metricsConfigProblem(path.join(ROOT, "configs", "torchserve", "metrics.yaml"))).toBeUndefined();
  });

  it("names the file and line of what is wrong", () => {
    expect(metricsConfigProblem(path.join(dir, "missing.yaml"))).toMatch(/missing\.yaml: no such file/);
    const broken = write("broken.yaml", "model_metrics:\n  counter:\n    - name: a\n   unit: Count\n");
    expect(metricsConfigProblem(broken)).toMatch(/broken\.yaml:4: /);
    const noUnit = write(
      "no-unit.yaml",
      "model_metrics:\n  counter:\n    - name: ok\n      unit: Count\n      dimensions: []\n    - name: bad\n      dimensions: [a]\n",
    );
    expect(metricsConfigProblem(noUnit)).toBe(
      `metrics_config ${noUnit}:6: model_metrics.counter[1] needs name and unit (strings) and dimensions (a list of strings)`,
    );
    const badType = write("bad-type.yaml", "ts_metrics:\n  summary: []\n");
    expect(metricsConfigProblem(badType)).toMatch(/bad-type\.yaml:2: ts_metrics\.summary: not a metric type/);
  });
});

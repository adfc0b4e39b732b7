// tsserve top's view from two scrapes of a metrics API: rates over the window, TTFT quantiles as
// Prometheus's histogram_quantile computes them, the load now, errors.
import { describe, expect, it } from "vitest";
import { parseExposition } from "../../../src/metrics/exposition.ts";
import { quantile, renderTop, topRows } from "../../../src/metrics/top.ts";

function exposition(
  model: string,
  success: number,
  tokens: number,
  ttft: Record<string, number>,
  failures: number,
  running: number,
): string {
  return [
    "# TYPE tsserve_request_success_total counter",
    `tsserve_request_success_total{model_name="${model}",finished_reason="stop",Hostname="h",} ${success}`,
    `tsserve_generation_tokens_total{model_name="${model}",Hostname="h",} ${tokens}`,
    ...Object.entries(ttft).map(
      ([le, n]) => `tsserve_time_to_first_token_seconds_bucket{model_name="${model}",le="${le}",Hostname="h",} ${n}`,
    ),
    `tsserve_request_failure_total{model_name="${model}",status="400",Hostname="h",} ${failures}`,
    `tsserve_num_requests_running{model_name="${model}",worker="1",Hostname="h",} ${running}`,
    `tsserve_num_requests_running{model_name="${model}",worker="2",Hostname="h",} 1.0`,
    `tsserve_kv_cache_usage_perc{model_name="${model}",worker="1",Hostname="h",} 0.25`,
    `ts_inference_requests_total{model_name="${model}",model_version="default",hostname="h",} 9.0`,
  ].join("\n");
}

describe("tsserve top", () => {
  it("reads the exposition's samples and labels, escapes included", () => {
    const [sample] = parseExposition('a_total{model_name="m",note="say \\"hi\\"\\n",} 3.5 1700000000\n# HELP x y');
    expect(sample).toEqual({ name: "a_total", labels: { model_name: "m", note: 'say "hi"\n' }, value: 3.5 });
  });

  it("interpolates a quantile within its bucket as histogram_quantile does", () => {
    const cumulative = new Map([
      [0.1, 2],
      [0.5, 6],
      [1, 8],
      [Infinity, 8],
    ]);
    expect(quantile(0.5, cumulative)).toBeCloseTo(0.1 + (0.4 * (4 - 2)) / 4); // rank 4 lies in (0.1, 0.5]
    expect(quantile(0.25, cumulative)).toBeCloseTo(0.1); // rank 2: the top of the first bucket
    expect(
      quantile(
        0.99,
        new Map([
          [1, 0],
          [Infinity, 3],
        ]),
      ),
    ).toBe(1); // in +Inf: the highest finite bound
    expect(
      quantile(
        0.5,
        new Map([
          [1, 0],
          [Infinity, 0],
        ]),
      ),
    ).toBeUndefined();
  });

  it("gives each model's rates over the window, the window's TTFT and the load now", () => {
    const before = { at: 0, samples: parseExposition(exposition("m", 10, 100, { "0.1": 5, "1.0": 10, "+Inf": 10 }, 1, 0)) };
    const after = { at: 2000, samples: parseExposition(exposition("m", 14, 180, { "0.1": 5, "1.0": 14, "+Inf": 14 }, 3, 2)) };
    const [row] = topRows(before, after);
    expect(row).toMatchObject({
      model: "m",
      requestsPerS: 2,
      tokensPerS: 40,
      running: 3,
      waiting: 0,
      kvUsage: 0.25,
      errors: 2,
      errorsTotal: 3,
    });
    // The window's 4 first tokens all came in (0.1, 1]: its median is that bucket's middle.
    expect(row!.ttftP50).toBeCloseTo(0.55);
    const view = renderTop([row!], "http://127.0.0.1:8082", new Date(0));
    expect(view).toMatch(/^MODEL\s+REQ\/S\s+TOK\/S\s+TTFT p50\s+TTFT p95\s+RUNNING\s+WAITING\s+KV\s+ERRORS \(total\)$/m);
    expect(view).toMatch(/^m\s+2\.00\s+40\.0\s+550 ms\s+955 ms\s+3\s+0\s+25\.0%\s+2 \(3\)$/m);
  });

  it("uses every request so far while none came in the window, and says when no model reports", () => {
    const scrape = { at: 0, samples: parseExposition(exposition("m", 4, 40, { "0.1": 4, "1.0": 4, "+Inf": 4 }, 0, 0)) };
    const [row] = topRows(scrape, { ...scrape, at: 1000 });
    expect(row).toMatchObject({ requestsPerS: 0, tokensPerS: 0, errors: 0 });
    expect(row!.ttftP50).toBeCloseTo(0.05);
    expect(renderTop(topRows(undefined, { at: 0, samples: [] }), "u", new Date(0))).toContain("no model has reported LLM metrics yet");
  });
});

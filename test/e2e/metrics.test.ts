// The LLM metrics on TorchServe's metrics API (issue 36), on both engines, scraped by a real Prometheus:
// after a known workload (requests whose token counts their answers report, one refused request, one
// prefix-cache hit), PromQL through Prometheus's HTTP API returns those counts and non-empty histograms,
// and every query of the shipped Grafana dashboard runs against what the server exposes.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readKeyFile } from "../../src/client/keys.ts";
import { parseExposition } from "../../src/metrics/exposition.ts";
import { publishedMetrics } from "../../src/metrics/llm-metrics.ts";
import { cli, E2E_PORT_BASE, ROOT, TINY_HANDLER, tinyConfig, waitFor } from "./helpers.ts";
import { sharedModel, sharedServer, SMOLLM2_VLLM, smollm2OnVllm, type RunningServer } from "./servers.ts";

const TINY = "metrics-tiny";
const PROMETHEUS_PORT = E2E_PORT_BASE + 60;
const DASHBOARD = path.join(ROOT, "docs", "grafana", "tsserve-llm.json");
const CONTEXT = Array.from({ length: 12 }, (_, i) => `Fact ${i}: the number ${i} comes before ${i + 1}.`).join(" ");

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
}

async function complete(server: RunningServer, model: string, body: Record<string, unknown>): Promise<{ status: number; usage?: Usage }> {
  const key = readKeyFile(server.paths.keyFile)!.inference.key;
  const response = await fetch(`http://127.0.0.1:${server.ports.inference}/predictions/${model}/1.0/v1/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${key}` },
    body: JSON.stringify({ model, temperature: 0, ...body }),
  });
  const json = (await response.json()) as { usage?: Usage };
  return { status: response.status, usage: json.usage };
}

/** The metrics API's text, as Prometheus scrapes it. */
async function exposition(server: RunningServer): Promise<string> {
  return (await fetch(`http://127.0.0.1:${server.ports.metrics}/metrics`)).text();
}

/** The sum of a family's samples for a model (and label filter), read from the exposition text. */
function total(text: string, name: string, model: string, filter: Record<string, string> = {}): number {
  const wanted = { model_name: model, ...filter };
  return parseExposition(text)
    .filter((s) => s.name === name && Object.entries(wanted).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

interface Workload {
  prompt: number;
  generated: number;
  answered: number;
}

/** Three completions, one of them the prefix-cache hit of another, and one request the worker refuses. */
async function workload(server: RunningServer, model: string, refused: Record<string, unknown>): Promise<Workload> {
  const bodies = [
    { prompt: `${CONTEXT} Question: what comes after 3?`, max_tokens: 5 },
    { prompt: `${CONTEXT} Question: what comes after 3?`, max_tokens: 5 },
    { prompt: "The capital of France is", max_tokens: 7 },
  ];
  const answers = [];
  for (const body of bodies) answers.push(await complete(server, model, body)); // one after another: the second finds the first's prefix
  for (const answer of answers) expect(answer.status).toBe(200);
  expect((await complete(server, model, refused)).status).toBe(400);
  return {
    prompt: answers.reduce((s, a) => s + a.usage!.prompt_tokens, 0),
    generated: answers.reduce((s, a) => s + a.usage!.completion_tokens, 0),
    answered: answers.length,
  };
}

const COUNTS = [
  "tsserve_prompt_tokens_total",
  "tsserve_generation_tokens_total",
  "tsserve_time_to_first_token_seconds_count",
  "tsserve_e2e_request_latency_seconds_count",
  "tsserve_request_queue_time_seconds_count",
  "tsserve_prefix_cache_hits_total",
] as const;

const REFUSED = "tsserve_request_failure_total{status=400}";

/**
 * Waits for the published counts to reach `before` plus the workload's (the worker publishes once a second),
 * the refused request's 400 included: it came last, so a flush can hold the answers and not yet the refusal.
 */
async function countsAfter(server: RunningServer, model: string, before: string, done: Workload): Promise<Record<string, number>> {
  const expected = {
    tsserve_prompt_tokens_total: done.prompt,
    tsserve_generation_tokens_total: done.generated,
    tsserve_time_to_first_token_seconds_count: done.answered,
    tsserve_e2e_request_latency_seconds_count: done.answered,
    tsserve_request_queue_time_seconds_count: done.answered,
    [REFUSED]: 1,
  };
  let last: Record<string, number> = {};
  try {
    return await waitFor(
      "the workload's counts on the metrics API",
      async () => {
        const now = await exposition(server);
        last = Object.fromEntries(COUNTS.map((name) => [name, total(now, name, model) - total(before, name, model)]));
        last[REFUSED] =
          total(now, "tsserve_request_failure_total", model, { status: "400" }) -
          total(before, "tsserve_request_failure_total", model, { status: "400" });
        return Object.entries(expected).every(([name, value]) => last[name] === value) ? last : undefined;
      },
      20_000,
      500,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(last)}`);
  }
}

// ---- Prometheus ------------------------------------------------------------

const prometheusBin = spawnSync("sh", ["-c", "command -v prometheus"], { encoding: "utf8" }).stdout.trim();
let prometheus: ChildProcess | undefined;

async function startPrometheus(targets: string[]): Promise<void> {
  const dir = fs.mkdtempSync(path.join(ROOT, ".work", "prometheus-"));
  const config = path.join(dir, "prometheus.yml");
  fs.writeFileSync(
    config,
    [
      "global: { scrape_interval: 1s }",
      "scrape_configs:",
      "  - job_name: torchserve",
      `    static_configs: [{ targets: [${targets.map((t) => `"${t}"`).join(", ")}] }]`,
      "",
    ].join("\n"),
  );
  prometheus = spawn(
    prometheusBin,
    [`--config.file=${config}`, `--storage.tsdb.path=${path.join(dir, "data")}`, `--web.listen-address=127.0.0.1:${PROMETHEUS_PORT}`],
    { stdio: ["ignore", "ignore", fs.openSync(path.join(dir, "prometheus.log"), "w")] },
  );
  await waitFor(
    "Prometheus ready",
    () =>
      fetch(`http://127.0.0.1:${PROMETHEUS_PORT}/-/ready`).then(
        (r) => (r.ok ? true : undefined),
        () => undefined,
      ),
    30_000,
    250,
  );
}

/** An instant PromQL query through Prometheus's HTTP API: its samples' values. */
async function promql(query: string): Promise<number[]> {
  const response = await fetch(`http://127.0.0.1:${PROMETHEUS_PORT}/api/v1/query?query=${encodeURIComponent(query)}`);
  const body = (await response.json()) as { status: string; error?: string; data: { result: { value: [number, string] }[] } };
  if (body.status !== "success") throw new Error(`PromQL ${query}: ${body.error}`);
  return body.data.result.map((r) => Number(r.value[1]));
}

/** Waits until Prometheus has scraped `query`'s value as `expected`. */
async function scraped(query: string, expected: number): Promise<void> {
  let got: number[] = [];
  await waitFor(
    `${query} = ${expected} in Prometheus`,
    async () => {
      got = await promql(query);
      return got[0] === expected ? true : undefined;
    },
    20_000,
    500,
  ).catch((error: Error) => {
    throw new Error(`${error.message} (got ${JSON.stringify(got)})`);
  });
}

// ---- the suites ------------------------------------------------------------

let transformers: RunningServer;
let vllm: RunningServer;

beforeAll(async () => {
  transformers = await sharedServer("transformers");
  await sharedModel(transformers, {
    name: TINY,
    handler: TINY_HANDLER,
    configFile: tinyConfig(path.join(transformers.scratch, `${TINY}.yaml`)),
  });
  vllm = await smollm2OnVllm();
  if (prometheusBin) await startPrometheus([`127.0.0.1:${transformers.ports.metrics}`, `127.0.0.1:${vllm.ports.metrics}`]);
  else console.error("metrics.test.ts: no prometheus on PATH (scripts/setup.sh installs Debian's): the metrics API is checked without it");
}, 600_000);

afterAll(() => {
  prometheus?.kill("SIGTERM");
});

describe.each([
  // A prompt longer than the model's context (the tiny model's 512 tokens, SmolLM2's 8,192) is refused with a 400.
  ["transformers", () => transformers, TINY, { prompt: "word ".repeat(600), max_tokens: 4 }],
  ["vllm", () => vllm, SMOLLM2_VLLM, { prompt: "word ".repeat(9000), max_tokens: 4 }],
] as const)("the LLM metrics on the %s engine", (_engine, server, model, refused) => {
  it("count the workload's tokens, answers, refusal and prefix hit, and fill the latency histograms", async () => {
    const before = await exposition(server());
    const done = await workload(server(), model, refused);
    const counts = await countsAfter(server(), model, before, done);
    expect(counts.tsserve_prefix_cache_hits_total).toBeGreaterThan(0);
    const after = await exposition(server());
    expect(
      total(after, "tsserve_request_failure_total", model, { status: "400" }) -
        total(before, "tsserve_request_failure_total", model, { status: "400" }),
    ).toBe(1);
    expect(total(after, "tsserve_request_success_total", model) - total(before, "tsserve_request_success_total", model)).toBe(
      done.answered,
    );
    // A handler's one model call is the stage `main` (AgentInstruct labels its two: python_shim/tests/worker/test_metrics.py).
    const main = { stage: "main" };
    expect(
      total(after, "tsserve_generation_tokens_total", model, main) - total(before, "tsserve_generation_tokens_total", model, main),
    ).toBe(done.generated);
    // Each histogram's +Inf bucket holds every observation, and the inter-token latencies one fewer per answer than its tokens.
    for (const name of ["tsserve_time_to_first_token_seconds", "tsserve_e2e_request_latency_seconds"]) {
      expect(total(after, `${name}_bucket`, model, { le: "+Inf" })).toBe(total(after, `${name}_count`, model));
    }
    const itl =
      total(after, "tsserve_inter_token_latency_seconds_count", model) - total(before, "tsserve_inter_token_latency_seconds_count", model);
    expect(itl).toBe(done.generated - done.answered);
    expect(after).toMatch(new RegExp(`tsserve_num_requests_running\\{[^}]*model_name="${model}"[^}]*\\} 0\\.0`));

    if (!prometheus) return;
    await scraped(`sum(tsserve_prompt_tokens_total{model_name="${model}"})`, total(after, "tsserve_prompt_tokens_total", model));
    await scraped(
      `sum(tsserve_request_failure_total{model_name="${model}",status="400"})`,
      total(after, "tsserve_request_failure_total", model, { status: "400" }),
    );
    const [p50] = await promql(`histogram_quantile(0.5, sum by (le) (tsserve_time_to_first_token_seconds_bucket{model_name="${model}"}))`);
    expect(p50).toBeGreaterThan(0);
    expect(Number.isFinite(p50)).toBe(true);
  }, 180_000);
});

describe("tsserve top", () => {
  it("shows each model's row in a pseudo-terminal, with the TTFT median Prometheus computes", async () => {
    const url = `http://127.0.0.1:${transformers.ports.metrics}`;
    const command = `${process.execPath} ${path.join(ROOT, "bin", "tsserve.mjs")} top --once --interval 0.5 --metrics-url ${url}`;
    const result = spawnSync("script", ["-qfec", command, "/dev/null"], { encoding: "utf8", timeout: 60_000 });
    expect(result.status, result.stdout + result.stderr).toBe(0);
    const row = result.stdout.split(/\r?\n/).find((line) => line.startsWith(`${TINY} `));
    expect(row, result.stdout).toBeDefined();
    const cells = row!.trim().split(/\s{2,}/);
    expect(cells.slice(5, 8)).toEqual(["0", "0", expect.stringMatching(/%$/)]); // idle: nothing running or waiting
    expect(cells[8]).toBe("0 (1)"); // the refused request, before this window
    if (!prometheus) return;
    const [median] = await promql(
      `histogram_quantile(0.5, sum by (le) (tsserve_time_to_first_token_seconds_bucket{model_name="${TINY}"}))`,
    );
    const [value, unit] = cells[3]!.split(" ");
    const shownMs = Number(value) * (unit === "s" ? 1000 : 1);
    expect(Math.abs(shownMs - median! * 1000)).toBeLessThanOrEqual(unit === "s" ? 10 : 1); // as rounded for the view
  });
});

describe("one request traced across every hop", () => {
  /** A request the handler refuses (max_tokens), on the model's own path, with or without the client's id. */
  async function refused(id?: string): Promise<{ status: number; header: string | null; error: { request_id?: string } }> {
    const key = readKeyFile(transformers.paths.keyFile)!.inference.key;
    const response = await fetch(`http://127.0.0.1:${transformers.ports.inference}/predictions/${TINY}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${key}`, ...(id ? { "X-Request-Id": id } : {}) },
      body: JSON.stringify({ prompt: "hi", max_tokens: -1 }),
    });
    const body = (await response.json()) as { error: { request_id?: string } };
    return { status: response.status, header: response.headers.get("x-request-id"), error: body.error };
  }

  it("names the request in the answer, and tsserve logs --request prints its lines from every log in order", async () => {
    const id = `trace-${process.pid}-${Date.now()}`;
    const own = await refused(id);
    expect([own.status, own.error.request_id]).toEqual([400, id]);
    expect(own.header).toMatch(/^[0-9a-f-]{36}$/); // the frontend answers with its own request id
    const plain = await refused();
    expect(plain.status).toBe(400);
    expect(plain.error.request_id).toBe(plain.header); // no client id: TorchServe's is the trace id
    const logs = (request: string) => cli(["logs", "--request", request, "--log-dir", transformers.paths.logs], 30_000);
    // The worker's line reaches the model log through the frontend, a moment after the answer.
    const traced = await waitFor(
      "the worker's answer line in the model log",
      async () => {
        const result = await logs(id);
        return /answered 400 after/.test(result.stdout) ? result : undefined;
      },
      15_000,
      300,
    );
    const lines = traced.stdout.trim().split("\n");
    const answer = new RegExp(
      `^model_log .*\\[request ${id}\\] answered 400 after \\d+ ms \\(TorchServe request ${own.header}\\): max_tokens`,
    );
    expect(
      lines.filter((line) => answer.test(line)),
      traced.stdout,
    ).toHaveLength(1); // once, though ts_log.log copies it
    expect(lines.some((line) => line.startsWith("ts_log "))).toBe(true); // the frontend's lines, found through its own id
    const stamps = lines.map((line) => line.slice(10, 33));
    expect(stamps).toEqual([...stamps].sort());
    expect((await logs(plain.header!)).stdout).toMatch(/^model_log .*answered 400 after/m);
    expect((await logs(own.header!)).stdout).toContain(`[request ${id}] answered 400`); // the header's id leads to the client's
  });
});

describe("the metrics config and the dashboard", () => {
  it("every LLM metric the server declares is on the metrics API, with TorchServe's own", async () => {
    const text = await exposition(transformers);
    for (const metric of publishedMetrics()) expect(text, metric.name).toContain(`# TYPE ${metric.name} ${metric.type}`);
    expect(text).toContain("# TYPE ts_inference_requests_total counter");
  });

  it("every query of the Grafana dashboard names exposed metrics and runs in Prometheus", async () => {
    const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, "utf8")) as { panels: { title: string; targets?: { expr: string }[] }[] };
    const exprs = dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((t) => ({ title: panel.title, expr: t.expr })));
    expect(exprs.length).toBeGreaterThanOrEqual(10);
    const exposed = new Set([...(await exposition(transformers)).matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]));
    for (const { title, expr } of exprs) {
      for (const [name] of expr.matchAll(/\b(?:tsserve|ts)_[a-z0-9_]+/g))
        expect(exposed.has(name), `${title}: ${name} is not on the metrics API`).toBe(true);
      if (prometheus) await promql(expr.replaceAll("$model", ".*").replaceAll("$__rate_interval", "1m"));
    }
  });
});

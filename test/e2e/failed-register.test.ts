// A register whose model fails to load must never wedge TorchServe (issue 29):
// tsserve registers asynchronously and polls, so no frontend thread is left
// waiting on the failed load. Afterwards 50 requests (/ping and a prediction
// on another model) all answer within 2 s, and `tsserve stop` needs no SIGKILL.
// Both models run the default, continuous batching (asyncCommunication: true),
// as `tsserve init` writes them. The suite has its own working folder and
// ports (TSSERVE_E2E_PORT_BASE).
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { createArchive } from "../../src/archive/archive.ts";
import type { TorchServeClient } from "../../src/client/http.ts";
import { connect } from "../../src/client/torchserve-process.ts";
import { TINY_HANDLER, cli, leftovers, tinyConfig } from "./helpers.ts";
import { withServer } from "./servers.ts";

const GOOD = "loads";
const BROKEN = "fails-to-load";
const srv = withServer("failed-register", { start: false }); // started through the CLI below
let client: TorchServeClient;

async function archive(name: string, config: string): Promise<string> {
  const result = await createArchive({
    modelName: name,
    version: "1.0",
    handler: TINY_HANDLER,
    configFile: config,
    exportPath: srv.scratch,
    force: true,
  });
  return result.path;
}

beforeAll(async () => {
  const started = await cli(["start", "--ts-config", srv.tsConfig, "--model-store", srv.modelStore], 240_000, srv.env);
  expect(started.code, started.stderr).toBe(0);
  client = connect(srv.paths);
  const good = await cli(["register", await archive(GOOD, tinyConfig(path.join(srv.scratch, "good.yaml")))], 240_000, srv.env);
  expect(good.code, good.stderr).toBe(0);
}, 600_000);

describe("a register that fails to load", () => {
  it("is refused before TorchServe is asked when model_path does not exist here (exit 2)", async () => {
    const config = tinyConfig(path.join(srv.scratch, "typo.yaml"));
    fs.writeFileSync(config, fs.readFileSync(config, "utf8").replace(/model_path: .*/, 'model_path: "/nonexistent/tsserve-model-typo"'));
    const result = await cli(["register", await archive("typo", config)], 60_000, srv.env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("handler.model_path");
    expect(result.stderr).toContain("/nonexistent/tsserve-model-typo");
    expect(result.stderr).toContain("does not exist on this machine");
    expect((await client.listModels()).models.map((m) => m.modelName)).not.toContain("typo");
  }, 120_000);

  it("reports the cause, unregisters it, and leaves TorchServe answering: 50 requests within 2 s each", async () => {
    // A checkpoint folder that exists but holds no model: the worker's load fails.
    const empty = path.join(srv.scratch, "empty-checkpoint");
    fs.mkdirSync(empty, { recursive: true });
    const config = tinyConfig(path.join(srv.scratch, "broken.yaml"));
    fs.writeFileSync(config, fs.readFileSync(config, "utf8").replace(/model_path: .*/, `model_path: "${empty}"`));
    const result = await cli(["register", await archive(BROKEN, config)], 240_000, srv.env);
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toContain(`the worker of model "${BROKEN}" failed to start`);
    expect((await client.listModels()).models.map((m) => m.modelName)).toEqual([GOOD]);

    const slow: string[] = [];
    for (let i = 0; i < 50; i++) {
      const started = Date.now();
      const answer =
        i % 2 === 0
          ? client.ping(AbortSignal.timeout(2000)).then((pong) => `ping ${pong.status}`)
          : client.predict(GOOD, JSON.stringify({ prompt: "Hello", max_tokens: 2, temperature: 0 })).then((r) => `predict ${r.status}`);
      const outcome = await Promise.race([answer, new Promise<string>((resolve) => setTimeout(() => resolve("no answer"), 2000))]).catch(
        (e: Error) => `failed ${e.message}`,
      );
      const ms = Date.now() - started;
      if (!(outcome === "ping Healthy" || outcome === "predict 200") || ms > 2000) slow.push(`request ${i}: ${outcome} after ${ms} ms`);
    }
    expect(slow).toEqual([]);
  }, 300_000);

  it("tsserve stop needs no SIGKILL and leaves nothing behind", async () => {
    const result = await cli(["stop"], 120_000, srv.env);
    expect(result.code).toBe(0);
    expect(result.stderr).not.toContain("SIGKILL");
    expect(leftovers(srv.paths)).toEqual([]);
  }, 120_000);
});

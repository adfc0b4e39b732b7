// `tsserve register --replace` on a real TorchServe 0.12 (issue 29): a new
// archive of a registered model whose packed config is the same has its
// handler swapped into the running worker (same worker pid, the model not
// loaded again); one whose config changed is unregistered and registered
// again (the model reloads). Own working folder and ports (TSSERVE_E2E_PORT_BASE).
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { createArchive } from "../../src/archive/archive.ts";
import type { TorchServeClient } from "../../src/client/http.ts";
import { connect } from "../../src/client/torchserve-process.ts";
import { ROOT, cli, tinyConfig, waitFor, writeFile } from "./helpers.ts";
import { withServer } from "./servers.ts";

const MODEL = "replaced";
const srv = withServer("register-replace", { start: false }); // started through the CLI below
let client: TorchServeClient;
let config: string;

function handlerSource(marker: string): string {
  return [
    `import { CompletionHandler, type CompletionRequest } from ${JSON.stringify(path.join(ROOT, "src", "index.ts"))};`,
    `export default class Replaced extends CompletionHandler {`,
    `  override formatPrompt(request: CompletionRequest): string {`,
    `    return ${JSON.stringify(marker)} + " " + (request.prompt ?? "");`,
    "  }",
    "}",
    "",
  ].join("\n");
}

async function archive(marker: string): Promise<string> {
  const handler = writeFile(path.join(srv.scratch, `handler-${marker}`, `${MODEL}.ts`), handlerSource(marker));
  return (
    await createArchive({
      modelName: MODEL,
      version: "1.0",
      handler,
      configFile: config,
      exportPath: path.join(srv.scratch, marker),
      force: true,
    })
  ).path;
}

async function promptStart(): Promise<string> {
  const result = await client.predict(MODEL, JSON.stringify({ prompt: "hi", max_tokens: 1, temperature: 0, echo: true }));
  return result.status === 200
    ? (JSON.parse(result.body) as { choices: { text: string }[] }).choices[0]!.text.split(" ")[0]!
    : `HTTP ${result.status}`;
}

const workerPid = async () => (await client.describeModel(MODEL))[0]!.workers[0]!.pid!;
const loads = () => (fs.readFileSync(path.join(srv.paths.logs, "model_log.log"), "utf8").match(/tsserve: loading /g) ?? []).length;

beforeAll(async () => {
  config = tinyConfig(path.join(srv.scratch, `${MODEL}.yaml`));
  const started = await cli(["start", "--ts-config", srv.tsConfig, "--model-store", srv.modelStore], 240_000, srv.env);
  expect(started.code, started.stderr).toBe(0);
  client = connect(srv.paths);
  const registered = await cli(["register", await archive("FIRST")], 240_000, srv.env);
  expect(registered.code, registered.stderr).toBe(0);
}, 600_000);

describe("tsserve register --replace", () => {
  it("swaps a new handler into the running worker when the config is the same: same pid, no second load", async () => {
    expect(await promptStart()).toBe("FIRST");
    const pid = await workerPid();
    const result = await cli(["register", await archive("SECOND"), "--replace"], 120_000, srv.env);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/replaced the handler of replaced in 1 running worker folder\(s\) in \d+ ms; the model stayed loaded/);
    expect(await waitFor("the new handler", async () => ((await promptStart()) === "SECOND" ? true : undefined), 10_000, 50)).toBe(true);
    expect(await workerPid()).toBe(pid);
    expect(loads()).toBe(1);
  }, 180_000);

  it("reloads the model when the config changed, and says which keys", async () => {
    fs.writeFileSync(config, fs.readFileSync(config, "utf8").replace(/dtype: .*/, 'dtype: "auto"'));
    const result = await cli(["register", await archive("THIRD"), "--replace"], 240_000, srv.env);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain(
      "the config changed (handler.dtype): unregistering replaced and registering the new archive (the model reloads)",
    );
    expect(await promptStart()).toBe("THIRD");
    expect(loads()).toBe(2);
  }, 300_000);
});

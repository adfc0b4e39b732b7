// `tsserve dev` on a real TorchServe 0.12 with the tiny model (issue 29): an
// edit of the handler's prompt format is live at the next request, with the
// worker's pid and the model's load count unchanged; a change to the config
// reloads the model. Measured: edit -> live (the first answer that shows the
// new code). Its own working folder, ports from TSSERVE_E2E_PORT_BASE.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, runningServer, stopServer } from "../../src/client/torchserve-process.ts";
import type { TorchServeClient } from "../../src/client/http.ts";
import { readKeyFile } from "../../src/client/keys.ts";
import { workPaths } from "../../src/client/paths.ts";
import { CLI, E2E_PORT_BASE, ROOT, leftovers, tinyConfig, waitFor, writeFile } from "./helpers.ts";

const MODEL = "dev-chat";
const work = path.join(ROOT, ".work", "e2e-dev");
const env = { ...process.env, TSSERVE_WORK_DIR: work };
const paths = workPaths(env);
const project = path.join(work, "project");
const handlerFile = path.join(project, "handlers", `${MODEL}.ts`);
const configFile = path.join(project, "configs", `${MODEL}.yaml`);
let dev: ChildProcess;
let devLog = "";
let client: TorchServeClient;

/** A handler whose prompt format starts with `marker`; its `prompt` route answers the prompt it would build, without the model. */
function handlerSource(marker: string): string {
  return [
    `import { CompletionHandler, type CompletionRequest, type Route } from ${JSON.stringify(path.join(ROOT, "src", "index.ts"))};`,
    "",
    `export default class DevChat extends CompletionHandler {`,
    `  override formatPrompt(request: CompletionRequest): string {`,
    `    return ${JSON.stringify(marker)} + " " + (request.prompt ?? "");`,
    "  }",
    "  override routes(): readonly Route[] {",
    '    return [...super.routes(), { path: "prompt", handle: async (calls) => calls.map((call) => ({ prompt: this.formatPrompt(call.body as CompletionRequest) })) }];',
    "  }",
    "}",
    "",
  ].join("\n");
}

/** The first word of the prompt the running handler builds, from its `prompt` route (no generation: a cheap probe). */
async function routePromptStart(): Promise<string> {
  const key = readKeyFile(paths.keyFile)?.inference.key;
  const response = await fetch(`${client.addresses.inference}/predictions/${MODEL}/1.0/prompt`, {
    method: "POST",
    body: JSON.stringify({ prompt: "hi" }),
    headers: { "Content-Type": "application/json", ...(key ? { Authorization: `Bearer ${key}` } : {}) },
  });
  const text = await response.text();
  return response.status === 200 ? (JSON.parse(text) as { prompt: string }).prompt.split(" ")[0]! : `HTTP ${response.status}: ${text}`;
}

/** The prompt the handler built, as the echoed start of the answer. */
async function promptStart(): Promise<string> {
  const result = await client.predict(MODEL, JSON.stringify({ prompt: "hi", max_tokens: 1, temperature: 0, echo: true }));
  if (result.status !== 200) return `HTTP ${result.status}: ${result.body}`;
  return (JSON.parse(result.body) as { choices: { text: string }[] }).choices[0]!.text.split(" ")[0]!;
}

async function workerPid(): Promise<number> {
  const [description] = await client.describeModel(MODEL);
  return description!.workers[0]!.pid!;
}

/** SmolLM2-135M-Instruct on the transformers engine (TSSERVE_E2E_DEV_MODEL=smollm2), to measure edit -> live on a real model. */
function smolConfig(file: string): string {
  const yaml = fs
    .readFileSync(path.join(ROOT, "configs", "smollm2-135m-instruct.yaml"), "utf8")
    .replace(/model_path: .*/, `model_path: "${path.join(ROOT, ".cache", "smollm2-135m-instruct")}"`)
    .replace(/engine: .*/, 'engine: "transformers"');
  return writeFile(file, yaml);
}

const loads = () => (fs.readFileSync(path.join(paths.logs, "model_log.log"), "utf8").match(/tsserve: loading /g) ?? []).length;

beforeAll(async () => {
  if (runningServer(paths)) await stopServer({ paths });
  fs.rmSync(work, { recursive: true, force: true });
  writeFile(handlerFile, handlerSource("VERSION-1"));
  if (process.env.TSSERVE_E2E_DEV_MODEL === "smollm2") smolConfig(configFile);
  else tinyConfig(configFile);
  dev = spawn(process.execPath, [CLI, "dev", "--handler", handlerFile, "-c", configFile, "--port-base", String(E2E_PORT_BASE)], {
    cwd: project,
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  dev.stderr!.on("data", (chunk) => (devLog += chunk));
  await waitFor(
    "tsserve dev to watch",
    () =>
      devLog.includes("watching") ||
      (dev.exitCode !== null
        ? (() => {
            throw new Error(devLog);
          })()
        : undefined),
    300_000,
    200,
  );
  client = connect(paths);
}, 360_000);

afterAll(async () => {
  if (dev && dev.exitCode === null) dev.kill("SIGKILL");
  if (runningServer(paths)) await stopServer({ paths });
}, 120_000);

describe("tsserve dev", () => {
  it("serves the handler with the model loaded once", async () => {
    expect(devLog).toMatch(new RegExp(`${MODEL} loaded in [\\d.]+ (ms|s)`));
    expect(devLog).toMatch(/inspector: http:\/\/127\.0\.0\.1:\d+\/\?key=\S+/); // on unless --no-inspector (test/e2e/inspector.test.ts)
    expect(await promptStart()).toBe("VERSION-1");
    expect(loads()).toBe(1);
  }, 60_000);

  it("puts an edit of the prompt format live at the next request; the worker and the loaded model stay", async () => {
    const pid = await workerPid();
    const edited = Date.now();
    fs.writeFileSync(handlerFile, handlerSource("VERSION-2"));
    const live = await waitFor(
      "the edit to be live",
      async () => ((await routePromptStart()) === "VERSION-2" ? Date.now() : undefined),
      30_000,
      20,
    );
    expect(await promptStart()).toBe("VERSION-2");
    const seconds = (live - edited) / 1000;
    const rebundled = /swapped in ([\d.]+ m?s)/.exec(devLog)?.[1];
    const replaced = /handler bundle replaced in (\d+) ms/.exec(fs.readFileSync(path.join(paths.logs, "model_log.log"), "utf8"))?.[1];
    process.stderr.write(
      `tsserve dev: edit -> live ${seconds.toFixed(2)} s (rebundled and written in ${rebundled}, new Node child in ${replaced} ms, the rest is waiting for the save to be seen and the probe requests)\n`,
    );
    // The goal is 2 s (0.5-0.7 s measured with the tiny model and SmolLM2); a loaded 2-core machine gets slack.
    expect(seconds).toBeLessThan(5);
    expect(await workerPid()).toBe(pid);
    expect(loads()).toBe(1);
    expect(devLog).toMatch(/dev-chat\.ts changed: handler rebundled and swapped in [\d.]+ m?s; the model stayed loaded/);
  }, 60_000);

  it("keeps the running code when an edit does not compile, and says why", async () => {
    const before = devLog.length;
    fs.writeFileSync(handlerFile, handlerSource("VERSION-3").replace("override formatPrompt", "override formatPrompt("));
    await waitFor("the refusal", () => devLog.slice(before).includes("not live:"), 30_000, 50);
    expect(await promptStart()).toBe("VERSION-2");
  }, 60_000);

  it("reloads the model when the config's model part changes, and says so", async () => {
    const before = devLog.length;
    fs.writeFileSync(handlerFile, handlerSource("VERSION-4"));
    fs.writeFileSync(configFile, fs.readFileSync(configFile, "utf8").replace(/dtype: .*/, 'dtype: "auto"'));
    await waitFor("the reload", () => /loaded in/.test(devLog.slice(before)), 300_000, 200);
    expect(devLog.slice(before)).toContain("changed (handler.dtype): reloading the model");
    expect(loads()).toBe(2);
    expect(await promptStart()).toBe("VERSION-4");
  }, 360_000);

  it("Ctrl-C stops the TorchServe it started, leaving nothing behind", async () => {
    dev.kill("SIGINT");
    await waitFor("tsserve dev to exit", () => (dev.exitCode !== null ? true : undefined), 120_000, 200);
    expect(dev.exitCode).toBe(0);
    expect(runningServer(paths)).toBeUndefined();
    expect(leftovers(paths)).toEqual([]);
  }, 150_000);
});

// End to end on a real TorchServe 0.12 over loopback, through the tsserve CLI:
// start, register, the seed's and the HELM client's requests, status, token
// refusal, a worker that cannot start, unregister, stop with nothing left behind.
// Its own working folder ($TSSERVE_WORK_DIR) and ports (--port-base).
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { createArchive } from "../../src/archive/archive.ts";
import { readKeyFile } from "../../src/client/keys.ts";
import { connect as connectTo, runningServer } from "../../src/client/torchserve-process.ts";
import { HELM_REQUEST, SEED_REQUEST, TINY_CONFIG, TINY_HANDLER, cli, leftovers, writeFile } from "./helpers.ts";
import { withServer } from "./servers.ts";

const MODEL = "tiny-llama-2-chat";
const srv = withServer("serving", { start: false }); // started through the CLI below
const { paths } = srv;
let exportDir: string;
/** The CLI as a user runs it, in the suite's own working folder ($TSSERVE_WORK_DIR). */
const tsserve = (args: string[]) => cli(args, 180_000, srv.env);
const connect = () => connectTo(paths);

beforeAll(async () => {
  exportDir = fs.mkdtempSync(path.join(srv.scratch, "export-"));
  await createArchive({ modelName: MODEL, version: "1.0", handler: TINY_HANDLER, configFile: TINY_CONFIG, exportPath: exportDir });
  const started = await tsserve(["start", "--port-base", String(srv.ports.inference)]);
  expect(started.stderr).toContain("TorchServe is up");
  expect(started.code).toBe(0);
}, 240_000);

describe("tsserve on a real TorchServe", () => {
  it("start wrote its logs and keys into the working folder, not the current directory", () => {
    expect(fs.existsSync(paths.keyFile)).toBe(true);
    expect(fs.existsSync(path.join(paths.logs, "ts_log.log"))).toBe(true);
    expect(fs.existsSync(path.join(process.cwd(), "logs"))).toBe(false);
    expect(fs.existsSync(path.join(process.cwd(), "key_file.json"))).toBe(false);
  });

  it("registers the archive and waits for its worker", async () => {
    const result = await tsserve(["register", path.join(exportDir, `${MODEL}.mar`), "--initial-workers", "1"]);
    expect(result.stderr).toMatch(
      new RegExp(
        `^tsserve register: registering ${MODEL} from ${MODEL}.mar with 1 worker\\(s\\)\n(.*\n)*tsserve register: ${MODEL} is ready after \\d+\\.\\d s\n$`,
      ),
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`Model "${MODEL}" Version: 1.0 registered with 1 initial workers`);
    const [description] = await connect().describeModel(MODEL);
    expect(description!.workers.map((w) => w.status)).toEqual(["READY"]);
  }, 180_000);

  it("answers the seed's request with 200 and choices[0].text", async () => {
    const result = await connect().predict(MODEL, JSON.stringify(SEED_REQUEST));
    expect(result.status).toBe(200);
    const body = JSON.parse(result.body);
    expect(typeof body.choices[0].text).toBe("string");
    expect(body.choices[0].index).toBe(0);
    expect(typeof body.raw_compute_time).toBe("number");
  }, 120_000);

  it("answers the HELM client's request shape with 200 and choices[0].text", async () => {
    const result = await connect().predict(MODEL, JSON.stringify(HELM_REQUEST));
    expect(result.status).toBe(200);
    const body = JSON.parse(result.body);
    expect(typeof body.choices[0].text).toBe("string");
  }, 120_000);

  it("predict prints the response body", async () => {
    const result = await tsserve(["predict", MODEL, "--json", JSON.stringify({ ...SEED_REQUEST, max_tokens: 8 })]);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout).choices[0].text).toEqual(expect.any(String));
  }, 60_000);

  it("status shows TorchServe healthy and the model's worker ready", async () => {
    const all = await tsserve(["status"]);
    expect(all.code).toBe(0);
    const report = JSON.parse(all.stdout);
    expect(report.torchserve).toBe("Healthy");
    expect(report.models).toEqual([expect.objectContaining({ modelName: MODEL, workers: [expect.objectContaining({ status: "READY" })] })]);
    const one = await tsserve(["status", MODEL]);
    expect(JSON.parse(one.stdout)[0]).toMatchObject({ modelName: MODEL, modelVersion: "1.0" });
  }, 60_000);

  it("refuses requests without the token, and the CLI prints the current key", async () => {
    const { inference } = connect().addresses;
    const anonymous = await fetch(`${inference}/predictions/${MODEL}`, {
      method: "POST",
      body: JSON.stringify(SEED_REQUEST),
      headers: { "Content-Type": "application/json" },
    });
    // TorchServe 0.12 answers a missing or wrong token with 400 InvalidKeyException.
    expect([400, 401]).toContain(anonymous.status);
    expect((await anonymous.json()).type).toBe("InvalidKeyException");
    const wrong = await fetch(`${inference}/predictions/${MODEL}`, {
      method: "POST",
      body: "{}",
      headers: { Authorization: "Bearer nope" },
    });
    expect([400, 401]).toContain(wrong.status);
    const token = await tsserve(["token"]);
    expect(token.stdout.trim()).toBe(readKeyFile(paths.keyFile)!.inference.key);
    const management = await tsserve(["token", "management"]);
    expect(management.stdout.trim()).toBe(readKeyFile(paths.keyFile)!.management.key);
  }, 60_000);

  it("refuses an archive whose checkpoint folder is missing, naming it, before registering", async () => {
    const config = writeFile(
      path.join(exportDir, "broken", "broken.yaml"),
      // TorchServe's own batches: a worker that fails to load under asyncCommunication leaves TorchServe 0.12's
      // AsyncWorkerThread waiting, and the frontend stops answering management calls (seen here and in faults.test.ts).
      fs
        .readFileSync(TINY_CONFIG, "utf8")
        .replace(/model_path: .*/, 'model_path: "/nonexistent/tsserve-model"')
        .replace(/^asyncCommunication: true$/m, "asyncCommunication: false"),
    );
    await createArchive({ modelName: "broken", version: "1.0", handler: TINY_HANDLER, configFile: config, exportPath: exportDir });
    const started = Date.now();
    const result = await tsserve(["register", path.join(exportDir, "broken.mar")]);
    // A checkpoint folder missing here is found before TorchServe is asked (failed-register.test.ts has a load that fails).
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("handler.model_path");
    expect(result.stderr).toContain("/nonexistent/tsserve-model");
    expect(Date.now() - started).toBeLessThan(60_000);
    // Nothing was registered.
    const models = (await connect().listModels()).models.map((m) => m.modelName);
    expect(models).not.toContain("broken");
  }, 120_000);

  it("unregisters the model, and its worker and Node child exit", async () => {
    const [description] = await connect().describeModel(MODEL);
    const workerPid = description!.workers[0]!.pid!;
    const result = await tsserve(["unregister", MODEL]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`Model "${MODEL}" unregistered`);
    const missing = await tsserve(["status", MODEL]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("404");
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && leftovers(paths).some((l) => l.includes("handler.mjs") || l.startsWith(`${workerPid} `))) {
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(leftovers(paths).filter((l) => l.includes("handler.mjs") || l.startsWith(`${workerPid} `))).toEqual([]);
  }, 60_000);

  it("stop leaves no TorchServe, worker or node process behind", async () => {
    const result = await tsserve(["stop"]);
    expect(result.code).toBe(0);
    expect(runningServer(paths)).toBeUndefined();
    expect(leftovers(paths)).toEqual([]);
    expect(fs.existsSync(paths.keyFile)).toBe(false);
  }, 120_000);
});

import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TorchServeClient, TorchServeError } from "../../../src/client/http.ts";
import { readKeyFile } from "../../../src/client/keys.ts";

/** A stand-in for TorchServe's two APIs that checks bearer tokens as TorchServe does. */
describe("TorchServeClient", () => {
  const seen: { url: string; auth?: string; method: string }[] = [];
  const keyFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "client-")), "key_file.json");
  const writeKeys = (inference: string, expires = "2999-01-01T00:00:00Z") =>
    fs.writeFileSync(
      keyFile,
      JSON.stringify({ management: { key: "mgmt" }, inference: { key: inference, "expiration time": expires }, API: { key: "api" } }),
    );
  let server: http.Server;
  let base: string;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      seen.push({ url: req.url!, auth: req.headers.authorization, method: req.method! });
      const url = new URL(req.url!, "http://x");
      if (url.pathname === "/token") {
        if (req.headers.authorization !== "Bearer api") return void res.writeHead(400).end();
        writeKeys("renewed");
        return void res.writeHead(200, { "content-type": "application/json" }).end("{}");
      }
      const want = url.pathname.startsWith("/models") ? "Bearer mgmt" : `Bearer ${readKeyFile(keyFile)?.inference.key}`;
      if (req.headers.authorization !== want) {
        res.writeHead(401, { "content-type": "application/json" });
        return void res.end(JSON.stringify({ code: 401, type: "InvalidKeyException", message: "Token Authorization failed." }));
      }
      if (url.pathname === "/ping") return void res.end(JSON.stringify({ status: "Healthy" }));
      if (url.pathname === "/models" && req.method === "POST")
        return void res.end(JSON.stringify({ status: `registered ${url.searchParams}` }));
      if (url.pathname === "/models/missing") {
        res.writeHead(404);
        return void res.end(JSON.stringify({ code: 404, type: "ModelNotFoundException", message: "Model not found: missing" }));
      }
      if (url.pathname === "/predictions/stream") {
        res.writeHead(200, { "content-type": "application/json" });
        res.write('{"part":1}');
        setTimeout(() => res.end('{"part":2}'), 50);
        return;
      }
      if (url.pathname.startsWith("/predictions/")) {
        let body = "";
        req.on("data", (c) => (body += c));
        req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end(body));
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const client = () =>
    new TorchServeClient({ addresses: { inference: base, management: base, metrics: base }, keys: () => readKeyFile(keyFile) });

  it("sends the inference key to the inference API and the management key to the management API", async () => {
    writeKeys("inf");
    expect(await client().ping()).toEqual({ status: "Healthy" });
    const reg = await client().registerModel({ url: "m.mar", modelName: "m", initialWorkers: 1, batchSize: 2, maxBatchDelay: 5 });
    expect(reg.status).toContain("synchronous=true");
    expect(reg.status).toContain("initial_workers=1");
    expect(seen.at(-1)!.auth).toBe("Bearer mgmt");
    const res = await client().predict("m", '{"prompt":"x"}');
    expect(res).toMatchObject({ status: 200, body: '{"prompt":"x"}' });
  });

  it("renews an expired inference key with the API key before using it", async () => {
    writeKeys("old", "2000-01-01T00:00:00Z");
    expect((await client().predict("m", "{}")).status).toBe(200);
    expect(readKeyFile(keyFile)!.inference.key).toBe("renewed");
    expect(seen.some((s) => s.url === "/token?type=inference" && s.auth === "Bearer api")).toBe(true);
  });

  it("turns TorchServe's error JSON into a TorchServeError", async () => {
    writeKeys("inf");
    const error = await client()
      .describeModel("missing")
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TorchServeError);
    expect(error).toMatchObject({ status: 404, type: "ModelNotFoundException", message: "Model not found: missing" });
  });

  it("is refused without a key", async () => {
    const anonymous = new TorchServeClient({ addresses: { inference: base, management: base, metrics: base } });
    expect((await anonymous.predict("m", "{}")).status).toBe(401);
  });

  it("hands streamed chunks over as they arrive", async () => {
    writeKeys("inf");
    const chunks: string[] = [];
    const result = await client().predictStream("stream", "{}", (c) => chunks.push(c));
    expect(result.status).toBe(200);
    expect(chunks).toEqual(['{"part":1}', '{"part":2}']);
  });
});

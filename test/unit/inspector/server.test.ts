// The inspector's server (server.ts, access.ts, send-request.ts) on a loopback port, with a stub standing
// in for TorchServe's inference API: the key, the journal's token, the live feed, the form's requests.
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startInspector, type InspectorServer } from "../../../src/inspector/server.ts";

const KEY = "inference-key";
let inspector: InspectorServer;
let torchserve: http.Server;
let base: string;
const forwarded: { url: string; auth: string | undefined; body: string }[] = [];
const withKey = { Authorization: `Bearer ${KEY}` };

beforeAll(async () => {
  const pageDir = fs.mkdtempSync(path.join(os.tmpdir(), "inspector-page-"));
  fs.writeFileSync(path.join(pageDir, "page.js"), "// page");
  torchserve = http.createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      forwarded.push({ url: request.url!, auth: request.headers.authorization, body });
      response
        .writeHead(400, { "Content-Type": "application/json" })
        .end('{"error":{"code":400,"message":"max_tokens: bad","field":"max_tokens"}}');
    });
  });
  await new Promise<void>((resolve) => torchserve.listen(0, "127.0.0.1", resolve));
  const inference = `http://127.0.0.1:${(torchserve.address() as AddressInfo).port}`;
  inspector = await startInspector({ modelName: "m", inference: () => ({ url: inference, key: KEY }), pageDir });
  base = new URL(inspector.pageUrl()).origin;
});

afterAll(async () => {
  await inspector.close();
  torchserve.close();
});

describe("the inspector's server", () => {
  it("serves nothing without the inference key, and lets the printed link in once, by a cookie", async () => {
    expect((await fetch(`${base}/`)).status).toBe(401);
    expect((await fetch(`${base}/api/state`, { headers: { Authorization: "Bearer nope" } })).status).toBe(401);
    expect((await fetch(`${base}/page.js`, { headers: withKey })).status).toBe(200);
    const link = await fetch(inspector.pageUrl(), { redirect: "manual" });
    expect(link.status).toBe(303);
    const cookie = link.headers.get("set-cookie")!;
    expect(cookie).toMatch(/HttpOnly; SameSite=Strict/);
    expect((await fetch(`${base}/`, { headers: { Cookie: cookie.split(";")[0]! } })).status).toBe(200);
  });

  it("refuses a Host that is not loopback (a rebound DNS name)", async () => {
    const status = await new Promise<number>((resolve) =>
      http.get(`${base}/api/state`, { headers: { ...withKey, Host: "evil.example" } }, (response) => resolve(response.statusCode!)),
    );
    expect(status).toBe(403);
  });

  it("takes journal events under its token only, and sends each change to the live feed", async () => {
    const journalPath = new URL(inspector.journalUrl).pathname;
    const event = { kind: "start", id: "j1", at: 1, route: "", body: { prompt: "p" } };
    expect((await fetch(`${base}/journal/wrong`, { method: "POST", body: JSON.stringify(event) })).status).toBe(401);
    const feed = await fetch(`${base}/api/events`, { headers: withKey });
    const reader = feed.body!.getReader();
    await reader.read(); // ": connected"
    expect((await fetch(`${base}${journalPath}`, { method: "POST", body: JSON.stringify({ ...event, kind: "nonsense" }) })).status).toBe(
      400,
    );
    expect((await fetch(`${base}${journalPath}`, { method: "POST", body: JSON.stringify(event) })).status).toBe(204);
    inspector.swapped("handlers/h.ts");
    let text = "";
    while (!text.includes('"swap"')) text += new TextDecoder().decode((await reader.read()).value);
    expect(text).toContain('"type":"journey"');
    expect(text).toContain('"codeVersion":1');
    await reader.cancel();
    const state = (await (await fetch(`${base}/api/state`, { headers: withKey })).json()) as {
      journeys: { id: string }[];
      codeVersion: number;
    };
    expect(state.journeys.map((j) => j.id)).toEqual(["j1"]);
    expect(state.codeVersion).toBe(1);
  });

  it("sends the form's request on with the key and answers what TorchServe answered; a bad route is refused by name", async () => {
    const send = (payload: unknown) => fetch(`${base}/api/send`, { method: "POST", headers: withKey, body: JSON.stringify(payload) });
    const answer = (await (await send({ route: "v1/completions", body: '{"max_tokens":"x"}' })).json()) as { status: number; body: string };
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body).error.field).toBe("max_tokens");
    expect(forwarded.at(-1)).toEqual({ url: "/predictions/m/1.0/v1/completions", auth: `Bearer ${KEY}`, body: '{"max_tokens":"x"}' });
    const refused = await send({ route: "../../models", body: "{}" });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { field: string } }).error.field).toBe("route");
  });
});

describe("the source lines of an error's place", () => {
  it("are read from the handler's own sources only", async () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), "inspector-src-"));
    const source = path.join(folder, "handlers", "h.ts");
    fs.mkdirSync(path.dirname(source));
    fs.writeFileSync(source, Array.from({ length: 20 }, (_, k) => `line ${k + 1}`).join("\n"));
    inspector.setSources([source]);
    const ask = (location: string) => fetch(`${base}/api/source?location=${encodeURIComponent(location)}`, { headers: withKey });
    const lines = (await (await ask("handlers/h.ts:11:5")).json()) as { line: number; lines: { number: number; text: string }[] };
    expect(lines.line).toBe(11);
    expect(lines.lines.map((l) => l.number)).toEqual([7, 8, 9, 10, 11, 12, 13, 14, 15]);
    expect(lines.lines[4]!.text).toBe("line 11");
    expect((await ask("../../etc/passwd:1")).status).toBe(404);
    expect((await ask("handlers/other.ts:1")).status).toBe(404);
  });
});

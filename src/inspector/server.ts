/**
 * The inspector `tsserve dev` serves on a loopback port: the page, its live
 * feed (server-sent events), the form's requests sent on to TorchServe, and
 * the journal the handler's Node children post to (under a per-run token).
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fromLoopback, hasKey, keyCookie } from "./access.ts";
import { JournalEvent } from "./journal.ts";
import { JourneyStore } from "./journey-store.ts";
import { pageHtml, UNAUTHORIZED_HTML } from "./page-html.ts";
import { SendRequest, sendRequest } from "./send-request.ts";
import { sourceLines } from "./source-lines.ts";

const MAX_POST_BYTES = 16 << 20;

export interface InspectorOptions {
  modelName: string;
  /** TorchServe's inference address and key, asked anew each time (key undefined: token authorization is off). */
  inference: () => { url: string; key: string | undefined };
  /** Where the built page lies (page.js, page.css). */
  pageDir: string;
  port?: number;
}

export interface InspectorServer {
  /** The page, with the key for the first visit (once TorchServe runs: it makes the key). */
  pageUrl(): string;
  /** Where the Node children post their journal (TSSERVE_INSPECTOR_URL). */
  journalUrl: string;
  store: JourneyStore;
  swapped(file: string): void;
  /** The handler's own sources (the bundle's inputs outside node_modules): the only files the page may show. */
  setSources(files: readonly string[]): void;
  close(): Promise<void>;
}

type Feed = Set<ServerResponse>;

interface Served {
  options: InspectorOptions;
  store: JourneyStore;
  feed: Feed;
  sources: readonly string[];
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_POST_BYTES) request.destroy(new Error("body too large"));
      else chunks.push(chunk);
    });
    request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    request.on("error", reject);
  });
}

function json(response: ServerResponse, status: number, value: unknown): void {
  response.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store" }).end(JSON.stringify(value));
}

function broadcast(feed: Feed, message: unknown): void {
  const line = `data: ${JSON.stringify(message)}\n\n`;
  for (const client of feed) client.write(line);
}

function openFeed(feed: Feed, response: ServerResponse): void {
  response.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-store", Connection: "keep-alive" });
  response.write(": connected\n\n");
  feed.add(response);
  response.on("close", () => feed.delete(response));
}

async function takeJournal(request: IncomingMessage, response: ServerResponse, store: JourneyStore, feed: Feed): Promise<void> {
  const parsed = JournalEvent.safeParse(JSON.parse(await readBody(request)));
  if (!parsed.success) return json(response, 400, { error: parsed.error.issues[0]?.message });
  const changed = store.apply(parsed.data);
  if (parsed.data.kind === "hello") broadcast(feed, { type: "hello", hello: parsed.data });
  for (const journey of changed) broadcast(feed, { type: "journey", journey });
  response.writeHead(204).end();
}

async function forward(request: IncomingMessage, response: ServerResponse, options: InspectorOptions): Promise<void> {
  const parsed = SendRequest.safeParse(JSON.parse(await readBody(request)));
  if (!parsed.success)
    return json(response, 400, { error: { message: parsed.error.issues[0]?.message, field: parsed.error.issues[0]?.path.join(".") } });
  const { url, key } = options.inference();
  const target = { inferenceUrl: url, modelName: options.modelName, key };
  json(response, 200, await sendRequest(target, parsed.data));
}

function asset(response: ServerResponse, file: string, type: string): void {
  fs.readFile(file, (error, bytes) => {
    if (error) response.writeHead(500, { "Content-Type": "text/plain" }).end(`${path.basename(file)} is not built: run npm run build`);
    else response.writeHead(200, { "Content-Type": type, "Cache-Control": "no-store" }).end(bytes);
  });
}

/** The page's own routes, once the key is shown. */
async function servePage(request: IncomingMessage, response: ServerResponse, url: URL, served: Served): Promise<void> {
  const { options, store, feed } = served;
  const route = `${request.method} ${url.pathname}`;
  if (route === "GET /")
    return void response.writeHead(200, { "Content-Type": "text/html; charset=utf-8" }).end(pageHtml(options.modelName));
  if (route === "GET /page.js") return asset(response, path.join(options.pageDir, "page.js"), "text/javascript");
  if (route === "GET /page.css") return asset(response, path.join(options.pageDir, "page.css"), "text/css");
  if (route === "GET /api/state")
    return json(response, 200, {
      modelName: options.modelName,
      hello: store.hello ?? null,
      codeVersion: store.codeVersion,
      journeys: store.list(),
    });
  if (route === "GET /api/events") return openFeed(feed, response);
  if (route === "POST /api/send") return forward(request, response, options);
  if (route === "GET /api/source") {
    const lines = await sourceLines(url.searchParams.get("location") ?? "", served.sources);
    return lines ? json(response, 200, lines) : json(response, 404, { error: "not one of the handler's sources" });
  }
  json(response, 404, { error: `no ${route} here` });
}

function handler(token: string, served: Served) {
  const { options, store, feed } = served;
  return async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    if (!fromLoopback(request)) return void response.writeHead(403).end();
    const url = new URL(request.url ?? "/", "http://127.0.0.1");
    if (request.method === "POST" && url.pathname === `/journal/${token}`) return takeJournal(request, response, store, feed);
    if (url.pathname === "/favicon.ico") return void response.writeHead(204).end();
    const { key } = options.inference();
    const given = url.searchParams.get("key");
    if (key !== undefined && given === key) {
      return void response.writeHead(303, { Location: "/", "Set-Cookie": keyCookie(key) }).end();
    }
    if (!hasKey(request, key)) return void response.writeHead(401, { "Content-Type": "text/html; charset=utf-8" }).end(UNAUTHORIZED_HTML);
    return servePage(request, response, url, served);
  };
}

export async function startInspector(options: InspectorOptions): Promise<InspectorServer> {
  const token = randomBytes(16).toString("hex");
  const store = new JourneyStore();
  const feed: Feed = new Set();
  const served: Served = { options, store, feed, sources: [] };
  const serve = handler(token, served);
  const server = http.createServer((request, response) => {
    serve(request, response).catch((error: Error) => {
      if (!response.headersSent) json(response, 400, { error: error.message });
      else response.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    pageUrl() {
      const { key } = options.inference();
      return key ? `${base}/?key=${encodeURIComponent(key)}` : `${base}/`;
    },
    journalUrl: `${base}/journal/${token}`,
    store,
    setSources(files) {
      served.sources = [...files];
    },
    swapped(file) {
      store.codeVersion += 1;
      broadcast(feed, { type: "swap", codeVersion: store.codeVersion, file, at: Date.now() });
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const client of feed) client.end();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

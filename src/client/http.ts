/**
 * A small TorchServe client over fetch: the inference API (ping, predictions,
 * streamed predictions) and the management API (register, unregister,
 * describe, list, scale). Each call reads the current keys and sends the
 * bearer token of its API; an expired key is renewed with the API key first.
 */
import { bearer, isExpired, type KeyFile } from "./keys.ts";
import type { ServerAddresses } from "./properties.ts";

export class TorchServeError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type?: string,
    readonly body?: string,
  ) {
    super(message);
    this.name = "TorchServeError";
  }
}

interface ClientOptions {
  addresses: ServerAddresses;
  /** Current keys, or undefined when token authorization is off. Called before each request. */
  keys?: () => KeyFile | undefined;
  fetch?: typeof fetch;
}

export interface RegisterOptions {
  /** Archive file or folder name in the model store (or a URL TorchServe allows). */
  url: string;
  modelName?: string;
  initialWorkers?: number;
  batchSize?: number;
  maxBatchDelay?: number;
  responseTimeout?: number;
  /** Wait for the workers (default true). */
  synchronous?: boolean;
  signal?: AbortSignal;
}

interface PredictResult {
  status: number;
  contentType: string | null;
  body: string;
}

async function errorFrom(response: Response): Promise<TorchServeError> {
  const text = await response.text().catch(() => "");
  try {
    const json = JSON.parse(text) as { code?: number; type?: string; message?: string; error?: { message?: string } };
    const message = json.message ?? json.error?.message ?? text;
    return new TorchServeError(response.status, message, json.type, text);
  } catch {
    return new TorchServeError(response.status, text || response.statusText, undefined, text);
  }
}

export class TorchServeClient {
  readonly addresses: ServerAddresses;
  private readonly keys: () => KeyFile | undefined;
  private readonly fetch: typeof fetch;

  constructor(options: ClientOptions) {
    this.addresses = options.addresses;
    this.keys = options.keys ?? (() => undefined);
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  private async key(kind: "inference" | "management"): Promise<string | undefined> {
    const keys = this.keys();
    if (!keys) return undefined;
    if (isExpired(keys, kind)) return (await this.renewKey(kind)) ?? keys[kind].key;
    return keys[kind].key;
  }

  /** Asks TorchServe for a fresh key of `kind` (management API, authorized by the API key); returns it. */
  async renewKey(kind: "inference" | "management"): Promise<string | undefined> {
    const keys = this.keys();
    if (!keys) return undefined;
    const url = `${this.addresses.management}/token?type=${kind}`;
    const response = await this.fetch(url, { method: "POST", headers: bearer(keys.API.key) });
    if (!response.ok) throw await errorFrom(response);
    // TorchServe rewrites key_file.json; read the new key from there.
    return this.keys()?.[kind].key;
  }

  private async call(api: "inference" | "management", method: string, pathAndQuery: string, init: RequestInit = {}): Promise<Response> {
    const headers = { ...bearer(await this.key(api)), ...(init.headers as Record<string, string> | undefined) };
    return this.fetch(`${this.addresses[api]}${pathAndQuery}`, { ...init, method, headers });
  }

  private async json<T>(api: "inference" | "management", method: string, pathAndQuery: string, init?: RequestInit): Promise<T> {
    const response = await this.call(api, method, pathAndQuery, init);
    if (!response.ok) throw await errorFrom(response);
    const text = await response.text();
    return (text ? JSON.parse(text) : {}) as T;
  }

  ping(signal?: AbortSignal): Promise<{ status: string }> {
    return this.json("inference", "GET", "/ping", { signal });
  }

  listModels(): Promise<{ models: { modelName: string; modelUrl: string }[] }> {
    return this.json("management", "GET", "/models?limit=1000");
  }

  describeModel(name: string, version?: string, signal?: AbortSignal): Promise<ModelDescription[]> {
    const v = version ? `/${encodeURIComponent(version)}` : "";
    return this.json("management", "GET", `/models/${encodeURIComponent(name)}${v}`, { signal });
  }

  registerModel(options: RegisterOptions): Promise<{ status: string }> {
    const query = new URLSearchParams({ url: options.url });
    if (options.modelName) query.set("model_name", options.modelName);
    if (options.initialWorkers !== undefined) query.set("initial_workers", String(options.initialWorkers));
    if (options.batchSize !== undefined) query.set("batch_size", String(options.batchSize));
    if (options.maxBatchDelay !== undefined) query.set("max_batch_delay", String(options.maxBatchDelay));
    if (options.responseTimeout !== undefined) query.set("response_timeout", String(options.responseTimeout));
    query.set("synchronous", String(options.synchronous ?? true));
    return this.json("management", "POST", `/models?${query}`, { signal: options.signal });
  }

  unregisterModel(name: string, version?: string, signal?: AbortSignal): Promise<{ status: string }> {
    const v = version ? `/${encodeURIComponent(version)}` : "";
    return this.json("management", "DELETE", `/models/${encodeURIComponent(name)}${v}`, { signal });
  }

  /** PUT /models/NAME?min_worker&max_worker; `synchronous: false` answers at once (workers start in the background). */
  scaleWorkers(name: string, workers: { min: number; max: number; synchronous: boolean }): Promise<{ status: string }> {
    const query = new URLSearchParams({
      min_worker: String(workers.min),
      max_worker: String(workers.max),
      synchronous: String(workers.synchronous),
    });
    return this.json("management", "PUT", `/models/${encodeURIComponent(name)}?${query}`);
  }

  /** POST /predictions/NAME; the status and body are returned as they are (no throw on 4xx/5xx). */
  async predict(name: string, body: string | Uint8Array, contentType = "application/json"): Promise<PredictResult> {
    const response = await this.call("inference", "POST", `/predictions/${encodeURIComponent(name)}`, {
      body: body as BodyInit,
      headers: { "Content-Type": contentType },
    });
    return { status: response.status, contentType: response.headers.get("content-type"), body: await response.text() };
  }

  /** Like predict, handing each chunk of a streamed (chunked) response to `onChunk` as it arrives. */
  async predictStream(
    name: string,
    body: string | Uint8Array,
    onChunk: (chunk: string) => void,
    contentType = "application/json",
  ): Promise<{ status: number; chunks: number }> {
    const response = await this.call("inference", "POST", `/predictions/${encodeURIComponent(name)}`, {
      body: body as BodyInit,
      headers: { "Content-Type": contentType },
    });
    let chunks = 0;
    if (response.body) {
      const decoder = new TextDecoder();
      for await (const part of response.body as unknown as AsyncIterable<Uint8Array>) {
        const text = decoder.decode(part, { stream: true });
        if (text) {
          chunks += 1;
          onChunk(text);
        }
      }
      const rest = decoder.decode();
      if (rest) onChunk(rest);
    }
    return { status: response.status, chunks };
  }
}

interface ModelDescription {
  modelName: string;
  modelVersion: string;
  modelUrl: string;
  minWorkers: number;
  maxWorkers: number;
  batchSize: number;
  maxBatchDelay: number;
  status?: string;
  workers: { id: string; startTime: string; status: string; memoryUsage?: number; pid?: number; gpu?: boolean }[];
  [key: string]: unknown;
}

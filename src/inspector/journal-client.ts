/**
 * The handler's Node child's side of the inspector: present only when
 * `tsserve dev` put TSSERVE_INSPECTOR_URL in TorchServe's environment. Posts
 * are fire-and-forget: a slow or gone inspector never delays or fails a request.
 */
import { z } from "zod";
import type { AnyHandler } from "../handler/handler-class.ts";
import type { Route } from "../handler/route.ts";
import type { IncomingRequest } from "../protocol/messages.ts";
import { BatchJournal, type Post } from "./batch-journal.ts";
import { INSPECTOR_URL_ENV, type JournalEvent } from "./journal.ts";

export interface Inspector {
  hello(handlerName: string, handler: AnyHandler): void;
  begin(batchId: number, requests: readonly IncomingRequest[]): BatchJournal;
}

function requestJsonSchema(handler: AnyHandler): Record<string, unknown> | null {
  try {
    return z.toJSONSchema(handler.requestSchema, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
  } catch {
    return null;
  }
}

export function inspectorFor(post: Post): Inspector {
  return {
    hello: (handlerName, handler) =>
      post({
        kind: "hello",
        handler: handlerName,
        routes: handler.routes().map((route: Route<unknown>) => route.path),
        requestSchema: requestJsonSchema(handler),
      }),
    begin: (batchId, requests) => new BatchJournal(post, batchId, requests),
  };
}

export function httpPost(url: string): Post {
  return (event: JournalEvent) => {
    fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(event) }).then(
      (response) => response.body?.cancel(),
      () => {},
    );
  };
}

export function inspectorFromEnv(env: NodeJS.ProcessEnv = process.env): Inspector | undefined {
  const url = env[INSPECTOR_URL_ENV];
  return url ? inspectorFor(httpPost(url)) : undefined;
}

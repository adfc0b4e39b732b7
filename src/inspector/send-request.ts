/**
 * The form's requests, sent on to the model's inference API with the key the
 * page was opened with, so that the page sees exactly what a client would.
 */
import { z } from "zod";

export const SendRequest = z.strictObject({
  /** The handler route ("" for the model's own path, `v1/chat/completions`). */
  route: z.string().regex(/^$|^(?!.*\.\.)[\w-]+(?:\/[\w.-]+)*$/, "a route is a path under the model (no `..`)"),
  /** The body as the client sends it: text, so that a malformed body is sent as it is. */
  body: z.string(),
});
export type SendRequest = z.infer<typeof SendRequest>;

export interface SendTarget {
  inferenceUrl: string;
  modelName: string;
  key: string | undefined;
}

export interface SendAnswer {
  status: number;
  contentType: string;
  body: string;
}

export function predictionUrl(target: SendTarget, route: string): string {
  const base = `${target.inferenceUrl}/predictions/${encodeURIComponent(target.modelName)}`;
  return route === "" ? base : `${base}/1.0/${route.replace(/^\/+/, "")}`;
}

export async function sendRequest(target: SendTarget, request: SendRequest): Promise<SendAnswer> {
  const response = await fetch(predictionUrl(target, request.route), {
    method: "POST",
    body: request.body,
    headers: { "Content-Type": "application/json", ...(target.key ? { Authorization: `Bearer ${target.key}` } : {}) },
  });
  return { status: response.status, contentType: response.headers.get("content-type") ?? "", body: await response.text() };
}

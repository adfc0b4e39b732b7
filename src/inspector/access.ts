/**
 * Who may see the inspector: a loopback client that shows TorchServe's
 * inference key (as a bearer token, or the cookie the printed link sets).
 * The Host header must name loopback too, so that a page on another site
 * cannot reach it through a rebound DNS name.
 */
import type { IncomingMessage } from "node:http";
import { timingSafeEqual } from "node:crypto";

export const KEY_COOKIE = "tsserve_inspector_key";

const LOOPBACK_HOSTS = /^(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/;

export function fromLoopback(request: IncomingMessage): boolean {
  const remote = request.socket.remoteAddress ?? "";
  return (remote === "127.0.0.1" || remote === "::1" || remote === "::ffff:127.0.0.1") && LOOPBACK_HOSTS.test(request.headers.host ?? "");
}

function sameKey(given: string | undefined, key: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(key);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookie(request: IncomingMessage, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? "").split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return undefined;
}

/** Whether the request carries `key` (undefined: TorchServe runs without token authorization, and so does the page). */
export function hasKey(request: IncomingMessage, key: string | undefined): boolean {
  if (key === undefined) return true;
  const bearer = /^Bearer (.+)$/.exec(request.headers.authorization ?? "")?.[1];
  return sameKey(bearer, key) || sameKey(cookie(request, KEY_COOKIE), key);
}

export function keyCookie(key: string): string {
  return `${KEY_COOKIE}=${encodeURIComponent(key)}; HttpOnly; SameSite=Strict; Path=/`;
}

/**
 * TorchServe's token keys. With token authorization on (the default),
 * TorchServe writes key_file.json into its working folder:
 * `{"management": {"key", "expiration time"}, "inference": {...}, "API": {"key"}}`.
 * Every inference and management call sends `Authorization: Bearer <key>`.
 */
import fs from "node:fs";
import { z } from "zod";

export const KeyFile = z.object({
  management: z.object({ key: z.string().min(1), "expiration time": z.string().optional() }),
  inference: z.object({ key: z.string().min(1), "expiration time": z.string().optional() }),
  API: z.object({ key: z.string().min(1) }),
});
export type KeyFile = z.infer<typeof KeyFile>;

export function readKeyFile(file: string): KeyFile | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  const parsed = KeyFile.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`${file} is not a TorchServe key file: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

/** Whether the key of `kind` has passed its expiration time (the API key never expires). */
export function isExpired(keys: KeyFile, kind: "inference" | "management", now: Date = new Date()): boolean {
  const when = keys[kind]["expiration time"];
  if (!when) return false;
  const at = Date.parse(when);
  return Number.isFinite(at) && at <= now.getTime();
}

export function bearer(key: string | undefined): Record<string, string> {
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/**
 * Files that must not ride along in an archive by accident: `--extra-files`
 * refuses them by name unless forced.
 */
import path from "node:path";

const SECRET_NAMES = new Set([
  ".env",
  "key_file.json",
  ".netrc",
  ".npmrc",
  ".pypirc",
  "credentials",
  "id_rsa",
  "id_dsa",
  "id_ecdsa",
  "id_ed25519",
]);
const SECRET_SUFFIXES = [".pem", ".key", ".p12", ".pfx"];

/** Why `file` looks like a secret, or undefined when it does not. */
export function secretReason(file: string): string | undefined {
  const base = path.basename(file);
  if (SECRET_NAMES.has(base)) return `"${base}" is a credentials file`;
  if (base.startsWith(".env.")) return `"${base}" is an environment file`;
  const lower = base.toLowerCase();
  const suffix = SECRET_SUFFIXES.find((s) => lower.endsWith(s));
  if (suffix) return `"${base}" looks like a private key (${suffix})`;
  return undefined;
}

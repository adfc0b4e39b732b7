const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** `4.8e10`, `"48GiB"`, `"45GB"`, `"4.8e10"` -> bytes (an integer). */
export function parseByteSize(value: number | string): number {
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value <= 0) throw new Error(`must be a positive number of bytes, got ${value}`);
    return Math.floor(value);
  }
  const match = /^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*$/i.exec(value);
  const factor = match ? UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || factor === undefined) throw new Error(`must be bytes such as 4.8e10, "48GiB" or "45GB", got "${value}"`);
  const bytes = Number(match[1]) * factor;
  if (bytes <= 0) throw new Error(`must be a positive number of bytes, got "${value}"`);
  return Math.floor(bytes);
}

/** What both soak scripts measure with: a seeded PRNG and a process's descriptors and memory. */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

/** mulberry32: a small seeded PRNG, so a run can be repeated. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function fdCount(pid: number): number {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/** Resident memory in MiB, one decimal (0 for a process that is gone). */
export function rssMiB(pid: number): number {
  try {
    const kib = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
    return Math.round(kib / 102.4) / 10;
  } catch {
    return 0;
  }
}

/** Runs a JDK `jcmd` command on a JVM (the jcmd beside the process's own java binary). */
export function jcmd(pid: number, ...command: string[]): string {
  const bin = path.join(path.dirname(fs.realpathSync(`/proc/${pid}/exe`)), "jcmd");
  return execFileSync(bin, [String(pid), ...command], { encoding: "utf8", maxBuffer: 64 << 20 });
}

/**
 * A JVM's live heap in MiB and its live instances of one class: `GC.class_histogram` runs a full
 * GC first, so this is what the heap holds, not what the JVM has reserved (RSS grows as the heap
 * expands towards its limit and does not shrink, whether or not anything leaks).
 */
export function jvmLiveHeap(pid: number, className: string): { heapMiB: number; instances: number } {
  const histogram = jcmd(pid, "GC.class_histogram").split("\n");
  const total =
    histogram
      .find((line) => line.trim().startsWith("Total"))
      ?.trim()
      .split(/\s+/) ?? [];
  const row =
    histogram
      .find((line) => line.trim().endsWith(` ${className}`))
      ?.trim()
      .split(/\s+/) ?? [];
  return { heapMiB: Math.round((Number(total[2] ?? 0) / 2 ** 20) * 10) / 10, instances: Number(row[1] ?? 0) };
}

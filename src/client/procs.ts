/**
 * Process bookkeeping for TorchServe and everything under it (the Java
 * frontend, its Python workers, their Node children), read from /proc, with
 * each process identified by pid and start time so a reused pid is never
 * signalled by mistake.
 */
import fs from "node:fs";

export interface ProcInfo {
  pid: number;
  ppid: number;
  /** Start time in clock ticks since boot (field 22 of /proc/PID/stat). */
  start: string;
  cmdline: string;
}

function readStat(pid: number): { ppid: number; start: string } | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) state ppid ...": comm may hold spaces and parens, so split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(rest[1]), start: rest[19] ?? "" };
  } catch {
    return undefined;
  }
}

export function procInfo(pid: number): ProcInfo | undefined {
  const stat = readStat(pid);
  if (!stat) return undefined;
  let cmdline = "";
  try {
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim();
  } catch {
    return undefined;
  }
  return { pid, ppid: stat.ppid, start: stat.start, cmdline };
}

export function allProcs(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const info = procInfo(Number(name));
    if (info) out.push(info);
  }
  return out;
}

/** Whether the process recorded as `info` still runs (same pid and start time, not a zombie). */
export function stillRunning(info: Pick<ProcInfo, "pid" | "start">): boolean {
  const stat = readStat(info.pid);
  if (!stat || stat.start !== info.start) return false;
  try {
    const state = fs.readFileSync(`/proc/${info.pid}/stat`, "utf8");
    return state.slice(state.lastIndexOf(")") + 2, state.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** `root` and all its descendants, from one snapshot of the process table. */
export function processTree(root: number, procs: ProcInfo[] = allProcs()): ProcInfo[] {
  const children = new Map<number, ProcInfo[]>();
  for (const p of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const self = procs.find((p) => p.pid === root);
  if (!self) return [];
  const out: ProcInfo[] = [];
  const stack = [self];
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(children.get(p.pid) ?? []));
  }
  return out;
}

/** Processes whose command line names `marker` (our working folder): workers and Node children outlive a killed frontend. */
export function procsMentioning(marker: string, procs: ProcInfo[] = allProcs()): ProcInfo[] {
  return procs.filter((p) => p.pid !== process.pid && p.cmdline.includes(marker));
}

export function signal(info: Pick<ProcInfo, "pid" | "start">, sig: NodeJS.Signals): void {
  if (!stillRunning(info)) return;
  try {
    process.kill(info.pid, sig);
  } catch {
    // Gone between the check and the signal.
  }
}

export const TS_MAIN_CLASS = "org.pytorch.serve.ModelServer";

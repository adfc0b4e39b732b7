/**
 * Putting a rebuilt handler bundle in front of a running model without
 * reloading it (`tsserve dev`, `tsserve register --replace`). TorchServe has
 * no such operation; the shim has: before each `handle` its bridge looks at
 * the bundle file, and when it was replaced it starts a Node child on the new
 * one and retires the old (python_shim/tsserve_shim/bridge/supervisor.py). So a
 * swap is writing the new handler.mjs (and its map) over the one each worker
 * runs, atomically. A config change cannot go this way: the worker hands the
 * config to the handler when it loads.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { BUNDLE_FILE, BUNDLE_MAP_FILE } from "../bundle/bundle-files.ts";
import type { TorchServeClient } from "./http.ts";
import { allProcs, stillRunning } from "./procs.ts";

/** The handler bundle a process runs, from its argument list (`node --enable-source-maps DIR/handler.mjs`). */
function bundleArgument(pid: number): string | undefined {
  try {
    const args = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return args.find((arg) => path.basename(arg) === BUNDLE_FILE);
  } catch {
    return undefined;
  }
}

/**
 * The folders holding the bundles the model's workers run now (a `.mar`'s
 * unpacked copy, or a `no-archive` folder in the model store), one per
 * distinct folder; empty when a worker has no Node child to ask.
 */
export async function liveBundleFolders(client: TorchServeClient, modelName: string): Promise<string[]> {
  const [description] = await client.describeModel(modelName);
  const workerPids = new Set((description?.workers ?? []).flatMap((worker) => (worker.pid ? [worker.pid] : [])));
  if (workerPids.size === 0) return [];
  const folders = new Set<string>();
  const served = new Set<number>();
  for (const proc of allProcs()) {
    if (!workerPids.has(proc.ppid) || !stillRunning(proc)) continue;
    const bundle = bundleArgument(proc.pid);
    if (!bundle) continue;
    folders.add(path.dirname(bundle));
    served.add(proc.ppid);
  }
  return served.size === workerPids.size ? [...folders] : [];
}

async function writeAtomically(file: string, bytes: Uint8Array): Promise<void> {
  const temp = `${file}.tsserve-${process.pid}.tmp`;
  await fsp.writeFile(temp, bytes);
  await fsp.rename(temp, file);
}

/** Writes the map first, then the bundle: a child started on the new bundle finds its map already there. */
export async function writeBundle(folder: string, bundle: Uint8Array, map: Uint8Array | undefined): Promise<void> {
  if (map) await writeAtomically(path.join(folder, BUNDLE_MAP_FILE), map);
  await writeAtomically(path.join(folder, BUNDLE_FILE), bundle);
}

/** Dotted keys whose values differ between two parsed configs (`handler.dtype`, `maxWorkers`). */
export function configChanges(before: unknown, after: unknown, prefix = ""): string[] {
  const isMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
  if (isMap(before) && isMap(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((key) => configChanges(before[key], after[key], prefix ? `${prefix}.${key}` : key));
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [prefix || "(the whole config)"];
}

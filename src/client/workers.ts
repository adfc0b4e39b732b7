/**
 * A model's workers as the management API reports them: how many are ready, and a restart of all of
 * them (TorchServe's scale to 0 and back), the recovery for a worker TorchServe 0.12 restarted in
 * place under asyncCommunication and never marked loaded (docs/operations.md).
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { TorchServeClient } from "./http.ts";

interface WorkerProgress {
  ready: number;
  wanted: number;
  version: string;
}

/** Ready workers of a model and how many it is meant to have; undefined while TorchServe does not answer. */
export async function workerProgress(client: TorchServeClient, modelName: string): Promise<WorkerProgress | undefined> {
  try {
    const [description] = await client.describeModel(modelName, undefined, AbortSignal.timeout(5000));
    if (!description) return undefined;
    const ready = description.workers.filter((worker) => worker.status === "READY").length;
    return { ready, wanted: description.minWorkers, version: description.modelVersion };
  } catch {
    return undefined;
  }
}

interface RestartedWorkers {
  seconds: number;
  workers: { id: string; pid?: number; status: string }[];
}

/**
 * Stops every worker of a model and starts as many again: scaled to 0 (synchronously: stopping is quick), then
 * back to its minimum and maximum without a frontend thread waiting on the loads, polled until all are READY.
 */
export async function restartWorkers(
  client: TorchServeClient,
  modelName: string,
  watch: { timeoutMs?: number; pollMs?: number; onProgress?: (message: string) => void } = {},
): Promise<RestartedWorkers> {
  const [before] = await client.describeModel(modelName);
  if (!before) throw new Error(`TorchServe describes no model ${modelName}`);
  const started = Date.now();
  watch.onProgress?.(`stopping ${modelName}'s ${before.workers.length} worker(s)`);
  await client.scaleWorkers(modelName, { min: 0, max: 0, synchronous: true });
  watch.onProgress?.(`starting ${before.minWorkers} worker(s) (at most ${before.maxWorkers})`);
  await client.scaleWorkers(modelName, { min: before.minWorkers, max: before.maxWorkers, synchronous: false });
  const timeoutMs = watch.timeoutMs ?? 3_600_000;
  for (;;) {
    const progress = await workerProgress(client, modelName);
    if (progress && progress.ready >= progress.wanted) {
      const [after] = await client.describeModel(modelName);
      const workers = (after?.workers ?? []).map((w) => ({ id: w.id, pid: w.pid, status: w.status }));
      return { seconds: (Date.now() - started) / 1000, workers };
    }
    if (Date.now() - started > timeoutMs) {
      throw new Error(
        `${modelName}: ${progress?.ready ?? 0} of ${before.minWorkers} worker(s) READY after ${Math.round(timeoutMs / 1000)} s (the model log says why)`,
      );
    }
    await sleep(watch.pollMs ?? 250);
  }
}

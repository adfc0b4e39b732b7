/**
 * Which combinations of TorchServe's `parallelType`, `torchrun`, `deviceIds`
 * and the handler's `num_gpu_per_model` can work, given how TorchServe 0.12's
 * frontend starts a worker (pytorch/serve v0.12.0, `wlm/Model.java`,
 * `WorkLoadManager.java`, `WorkerThread.getDeviceIds`, `WorkerLifeCycle.java`):
 *
 * - `torchrun.nproc-per-node` becomes the model's parallel level only together
 *   with a `parallelType`; without one TorchServe ignores `torchrun`, and every
 *   worker sees all GPUs (the shim picks a group of `num_gpu_per_model`).
 * - With a parallel level P, each worker's CUDA_VISIBLE_DEVICES holds exactly
 *   P GPUs (P consecutive entries of `deviceIds` when set, stepping by P);
 *   with `pp`, `tp` or `pptp` torchrun also starts P processes per worker.
 *
 * tsserve loads one model per worker, in one process, spread over
 * `num_gpu_per_model` GPUs. The Python shim applies the same rules at load
 * time (python_shim/tsserve_shim/placement.py).
 */

export interface GpuLayoutIssue {
  path: (string | number)[];
  message: string;
}

interface LayoutKeys {
  parallelType?: string | undefined;
  torchrun?: Record<string, unknown> | undefined;
  parallelLevel?: unknown;
  deviceIds?: number[] | undefined;
}

/** The parallel level TorchServe 0.12 gives the model: nproc-per-node (default 1) or parallelLevel, only with a parallelType. */
export function parallelLevel(config: LayoutKeys): number {
  if (config.parallelType === undefined) return 0;
  if (config.torchrun !== undefined) {
    const nproc = config.torchrun["nproc-per-node"];
    return typeof nproc === "number" ? nproc : 1;
  }
  return typeof config.parallelLevel === "number" && config.parallelLevel > 0 ? config.parallelLevel : 0;
}

/** What keeps a config from working with `num_gpu_per_model` GPUs per worker; empty when it can work. */
export function gpuLayoutIssues(config: LayoutKeys, numGpuPerModel: number): GpuLayoutIssue[] {
  const level = parallelLevel(config);
  const deviceIds = config.deviceIds ?? [];
  const issues: GpuLayoutIssue[] = [];
  if (level === 0) {
    if (deviceIds.length > 0 && deviceIds.length < numGpuPerModel) {
      issues.push({
        path: ["deviceIds"],
        message:
          `deviceIds names ${deviceIds.length} GPU(s) but handler.num_gpu_per_model is ${numGpuPerModel}: ` +
          `no worker could be placed; list at least ${numGpuPerModel} GPUs or lower num_gpu_per_model`,
      });
    }
    return issues;
  }
  if (config.parallelType !== "custom" && level > 1) {
    issues.push({
      path: ["parallelType"],
      message:
        `parallelType ${config.parallelType} makes TorchServe start torchrun with ${level} processes per worker, ` +
        `each loading the whole model; tsserve spreads one model over handler.num_gpu_per_model GPUs itself. ` +
        `Remove parallelType and torchrun, or use parallelType: custom with torchrun nproc-per-node: ${numGpuPerModel}`,
    });
  } else if (level !== numGpuPerModel) {
    const consequence =
      level < numGpuPerModel ? "no worker could be placed" : `${level - numGpuPerModel} GPU(s) of every worker would stay idle`;
    issues.push({
      path: ["torchrun", "nproc-per-node"],
      message:
        `with parallelType ${config.parallelType} TorchServe shows each worker exactly ${level} GPU(s) ` +
        `(CUDA_VISIBLE_DEVICES), but handler.num_gpu_per_model is ${numGpuPerModel} (${consequence}): ` +
        (config.parallelType === "custom" ? "set" : "use parallelType: custom with") +
        ` torchrun nproc-per-node: ${numGpuPerModel}, or remove parallelType so every worker sees all GPUs`,
    });
  }
  if (deviceIds.length > 0 && deviceIds.length % level !== 0) {
    issues.push({
      path: ["deviceIds"],
      message:
        `deviceIds has ${deviceIds.length} GPU(s), not a multiple of the ${level} TorchServe hands each worker: ` +
        `the worker that starts at the last, partial group would fail; list a multiple of ${level} GPUs`,
    });
  }
  return issues;
}

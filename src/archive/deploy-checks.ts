/**
 * Settings that pack fine but fail where the archive is served, found while
 * packing (`tsserve archive`) or laying out (`tsserve kserve`), each told
 * with its fix. A refusal is for a setting that cannot work; a warning for
 * one that works only if the serving host happens to match.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { HOST_PACKAGES, requirementName } from "./requirements.ts";

/** TorchServe installs an archive's requirements into a venv of its own only with this. */
export const turnsOnVenv = (config: Record<string, unknown>): boolean => config.useVenv === true;

/** Why a per-model install without a venv goes wrong, and the fix: one sentence for archive and kserve alike. */
export function missingVenvMessage(configName: string): string {
  return (
    `${configName} has no "useVenv: true": with install_py_dep_per_model=true TorchServe then runs ` +
    "`pip install -t <model folder>`, which ignores the host's packages and installs torch again beside them. " +
    `Add "useVenv: true" to ${configName} (a top-level key, beside minWorkers)`
  );
}

/**
 * `-r` lines mean per-model installs; they need the venv. Undefined when
 * there are none, or the config turns the venv on.
 */
export function venvRefusal(
  config: Record<string, unknown>,
  configName: string,
  userLines: readonly string[],
  requirementsName: string,
): string | undefined {
  const packages = userLines.filter((line) => requirementName(line) !== undefined);
  if (packages.length === 0 || turnsOnVenv(config)) return undefined;
  return (
    `${requirementsName} names Python packages (${packages.join(", ")}), which TorchServe installs only per model, and ` +
    `${missingVenvMessage(configName)}, or leave out --requirements-file.`
  );
}

/** A user requirement for a package the host provides replaces the host's build (torch matched to its CUDA, the running TorchServe). */
export function hostPackageWarnings(userLines: readonly string[], requirementsName: string): string[] {
  return userLines.flatMap((line) => {
    const name = requirementName(line);
    return name !== undefined && HOST_PACKAGES.has(name)
      ? [
          `${requirementsName}: "${line}" would replace the serving host's ${name} (its build matches the host's CUDA and TorchServe): leave it out`,
        ]
      : [];
  });
}

/**
 * An archive whose config has no venv, registered on a TorchServe that
 * installs each archive's requirements (`install_py_dep_per_model=true`).
 */
export function perModelInstallWarning(config: Record<string, unknown> | undefined, configName: string): string | undefined {
  if (config === undefined || turnsOnVenv(config)) return undefined;
  return `this TorchServe installs each archive's requirements (install_py_dep_per_model=true), and ${missingVenvMessage(configName)}, then archive it again`;
}

/**
 * `tsserve register --batch-size B` overrides the config's batchSize; with
 * continuous batching TorchServe 0.12 cannot take more than one job at once.
 */
export function batchSizeRefusal(
  config: Record<string, unknown> | undefined,
  batchSize: number | undefined,
  configName: string,
): string | undefined {
  if (config?.asyncCommunication !== true || batchSize === undefined || batchSize <= 1) return undefined;
  return (
    `--batch-size ${batchSize}: ${configName} has "asyncCommunication: true" (continuous batching), where TorchServe 0.12 ` +
    "fails with two jobs at once and the engine batches the requests itself: leave out --batch-size (or archive with asyncCommunication: false for TorchServe's own batches)"
  );
}

/** A checkpoint folder that is not on this machine is fine only if it is where TorchServe runs. */
export function modelPathWarning(key: string, folder: string | undefined): string | undefined {
  if (folder === undefined || fs.statSync(folder, { throwIfNoEntry: false })?.isDirectory()) return undefined;
  return (
    `handler.${key} ${folder} is not a folder on this machine: the worker fails to load unless it exists on the host that serves the archive ` +
    "(for a container, give the path inside it)"
  );
}

/**
 * `tsserve register` on this machine's TorchServe: a packed checkpoint path
 * (absolute once archived) that does not exist here would fail the worker's
 * load, so it is refused before TorchServe is asked. A relative path (an
 * archive tsserve did not write) is left to the worker.
 */
export function missingModelPathRefusal(config: Record<string, unknown> | undefined, configName: string): string | undefined {
  const section = config?.handler;
  if (section === null || typeof section !== "object") return undefined;
  for (const key of ["model_path", "tokenizer_path", "gguf_file"] as const) {
    const value = (section as Record<string, unknown>)[key];
    if (typeof value !== "string" || value === "") continue;
    const place = value === "~" || value.startsWith("~/") ? path.join(os.homedir(), value.slice(1)) : value;
    if (!path.isAbsolute(place) || fs.existsSync(place)) continue;
    return (
      `handler.${key} in the archive's ${configName} is ${value}, which does not exist on this machine (where TorchServe runs): ` +
      `fix ${key} in the config and archive it again (nothing was registered)`
    );
  }
  return undefined;
}

/**
 * Which `torchserve` launcher tsserve runs, in this order: `--torchserve` (or
 * `$TSSERVE_TORCHSERVE`), `$TSSERVE_VENV`, the project's `.venv` (what
 * `tsserve setup` makes), the tsserve checkout's own `.venv`, then
 * `torchserve` on PATH.
 */
import fs from "node:fs";
import path from "node:path";

interface TorchServeLocation {
  /** The launcher's absolute path. */
  path: string;
  /** Where it was found, for messages. */
  source: string;
}

interface FindTorchServeOptions {
  /** `--torchserve`: a path, or a command name looked up on PATH. */
  explicit?: string;
  /** The user's project (its `.venv`). */
  projectRoot: string;
  /** The tsserve package's own folder (a checkout's `.venv`). */
  packageRoot: string;
  env?: NodeJS.ProcessEnv;
}

/** A user-facing failure (exit code 2 in the CLI): no launcher, or a named one that does not exist. */
export class TorchServeNotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TorchServeNotFoundError";
  }
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** `name` looked up on PATH, as a shell would. */
export function onPath(name: string, pathVar: string | undefined): string | undefined {
  for (const dir of (pathVar ?? "").split(path.delimiter)) {
    if (dir && isExecutable(path.join(dir, name))) return path.join(path.resolve(dir), name);
  }
  return undefined;
}

function named(value: string, source: string, env: NodeJS.ProcessEnv): TorchServeLocation {
  const found = value.includes("/") ? (isExecutable(path.resolve(value)) ? path.resolve(value) : undefined) : onPath(value, env.PATH);
  if (!found) throw new TorchServeNotFoundError(`${source} names ${value}, which is not an executable torchserve launcher`);
  return { path: found, source };
}

export function findTorchServe(options: FindTorchServeOptions): TorchServeLocation {
  const env = options.env ?? process.env;
  if (options.explicit) return named(options.explicit, "--torchserve", env);
  if (env.TSSERVE_TORCHSERVE) return named(env.TSSERVE_TORCHSERVE, "$TSSERVE_TORCHSERVE", env);
  const venvs: Array<[string, string]> = [];
  if (env.TSSERVE_VENV) venvs.push([path.resolve(env.TSSERVE_VENV), "$TSSERVE_VENV"]);
  venvs.push([path.join(options.projectRoot, ".venv"), "the project's .venv"]);
  venvs.push([path.join(options.packageRoot, ".venv"), "tsserve's own .venv"]);
  for (const [venv, source] of venvs) {
    const launcher = path.join(venv, "bin", "torchserve");
    if (isExecutable(launcher)) return { path: launcher, source };
  }
  const fromPath = onPath("torchserve", env.PATH);
  if (fromPath) return { path: fromPath, source: "PATH" };
  throw new TorchServeNotFoundError(
    [
      "TorchServe not found: tried --torchserve, $TSSERVE_TORCHSERVE, " +
        venvs.map(([v]) => `${v}/bin/torchserve`).join(", ") +
        " and torchserve on PATH.",
      "Run `npx tsserve setup` to make a .venv with TorchServe 0.12 in this project, or pass --torchserve PATH.",
    ].join("\n"),
  );
}

/** The venv a launcher lives in (its bin/ folder's parent has pyvenv.cfg), if any. */
export function venvOf(launcher: string): string | undefined {
  const venv = path.dirname(path.dirname(launcher));
  return fs.existsSync(path.join(venv, "pyvenv.cfg")) ? venv : undefined;
}

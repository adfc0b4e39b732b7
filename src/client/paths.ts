/**
 * Where tsserve keeps TorchServe's state: one git-ignored working folder in
 * the project (`.work/torchserve/`), so logs, key_file.json, the pid file and
 * unpacked archives never land in the user's current directory. The project
 * is the folder of the nearest package.json above the current directory: the
 * user's project when tsserve is installed as a dependency, the checkout when
 * run inside tsserve itself.
 */
import fs from "node:fs";
import path from "node:path";
import { PACKAGE_ROOT } from "../package-root.ts";

/** The nearest folder at or above `from` with a package.json, else `from` itself. */
export function projectRoot(from: string = process.cwd()): string {
  for (let dir = path.resolve(from); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, "package.json"))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(from);
  }
}

export interface WorkPaths {
  root: string;
  /** TorchServe's cwd: key_file.json lands here. */
  work: string;
  logs: string;
  /** TEMP/TMPDIR of TorchServe: unpacked archives and its pid file. */
  tmp: string;
  defaultModelStore: string;
  /** What `tsserve start` recorded: pid, addresses, model store. */
  state: string;
  keyFile: string;
  pidFile: string;
  venvBin: string;
  defaultTsConfig: string;
}

export function workPaths(env: NodeJS.ProcessEnv = process.env): WorkPaths {
  const root = env.TSSERVE_ROOT ? path.resolve(env.TSSERVE_ROOT) : projectRoot();
  const work = env.TSSERVE_WORK_DIR ? path.resolve(env.TSSERVE_WORK_DIR) : path.join(root, ".work", "torchserve");
  const tmp = path.join(work, "tmp");
  // The project's TorchServe config, else the one tsserve ships (loopback addresses, model API on).
  const projectTsConfig = path.join(root, "configs", "config.properties");
  return {
    root,
    work,
    logs: path.join(work, "logs"),
    tmp,
    defaultModelStore: path.join(work, "model-store"),
    state: path.join(work, "tsserve-state.json"),
    keyFile: path.join(work, "key_file.json"),
    // torchserve's launcher writes its pid file into tempfile.gettempdir(), i.e. $TMPDIR.
    pidFile: path.join(tmp, ".model_server.pid"),
    venvBin: env.TSSERVE_VENV ? path.join(path.resolve(env.TSSERVE_VENV), "bin") : path.join(root, ".venv", "bin"),
    defaultTsConfig: fs.existsSync(projectTsConfig) ? projectTsConfig : path.join(PACKAGE_ROOT, "configs", "config.properties"),
  };
}

/** Where `scripts/demo.ts --port-base P` keeps its TorchServe: `.work/demo-P` in the project. */
export const demoWorkDir = (root: string, portBase: number): string => path.join(root, ".work", `demo-${portBase}`);

/**
 * The work paths of the TorchServe whose keys `tsserve token` reads: $TSSERVE_WORK_DIR's; else the
 * project's own (`tsserve start`) when it has a key file; else the one demo started with `--port-base`
 * that has one (`.work/demo-P/key_file.json`: a stopped server's is removed). Several such demos and
 * no key file of the project's is an error naming them.
 */
export function keyedWorkPaths(env: NodeJS.ProcessEnv = process.env): WorkPaths {
  const paths = workPaths(env);
  if (env.TSSERVE_WORK_DIR || fs.existsSync(paths.keyFile)) return paths;
  const workDir = path.join(paths.root, ".work");
  const demos = (fs.existsSync(workDir) ? fs.readdirSync(workDir) : [])
    .filter((name) => /^demo-\d+$/.test(name) && fs.existsSync(path.join(workDir, name, "key_file.json")))
    .map((name) => path.join(workDir, name))
    .sort();
  if (demos.length === 1) return workPaths({ ...env, TSSERVE_WORK_DIR: demos[0] });
  if (demos.length > 1) {
    throw new Error(`no key file at ${paths.keyFile}, and several demos have one: set TSSERVE_WORK_DIR to one of ${demos.join(", ")}`);
  }
  return paths;
}

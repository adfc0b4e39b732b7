/**
 * `tsserve setup`: a Python venv with TorchServe 0.12 and the shim's
 * requirements in the user's project (`.venv`, which `tsserve start` then
 * finds), made by scripts/setup-venv.sh, the script this checkout's own
 * set-up runs.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { onPath } from "../../client/torchserve-path.ts";
import { projectRoot } from "../../client/paths.ts";
import { PACKAGE_ROOT } from "../../package-root.ts";
import { UsageError, type Command } from "../command.ts";

const usage = `Usage: tsserve setup [--venv DIR] [--python PY] [--dry-run]

Creates (or updates) a Python venv with TorchServe 0.12, torch, transformers and the
other requirements of tsserve's shim, in the project's .venv by default. Idempotent:
nothing runs while the venv matches the requirements. TorchServe also needs a Java
runtime (JDK 17) on PATH.

Options:
  --venv DIR     where to make the venv (default: .venv in the project, the folder of the
                 nearest package.json)
  --python PY    the Python that makes it (default python3; 3.10 or newer)
  --dry-run      print the command instead of running it`;

const SETUP_SCRIPT = path.join(PACKAGE_ROOT, "scripts", "setup-venv.sh");
const SHIM_REQUIREMENTS = path.join(PACKAGE_ROOT, "python_shim", "requirements.txt");

/** The command line that makes the venv. */
function setupCommand(venv: string, python?: string): string[] {
  return ["bash", SETUP_SCRIPT, ...(python ? ["--python", python] : []), venv, SHIM_REQUIREMENTS];
}

function run(argv: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "inherit", "inherit"] });
    child.once("error", reject);
    child.once("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

const command: Command = {
  name: "setup",
  summary: "make a Python venv with TorchServe in the project (.venv)",
  usage,
  options: {
    venv: { type: "string" },
    python: { type: "string" },
    "dry-run": { type: "boolean", default: false },
  },
  async run({ values }) {
    const venv = path.resolve((values.venv as string | undefined) ?? path.join(projectRoot(), ".venv"));
    const python = values.python as string | undefined;
    if (python === "") throw new UsageError("--python must name a Python interpreter");
    const argv = setupCommand(venv, python);
    if (values["dry-run"]) {
      process.stdout.write(`${argv.map((a) => (/^[\w./=-]+$/.test(a) ? a : JSON.stringify(a))).join(" ")}\n`);
      return 0;
    }
    const code = await run(argv);
    if (code !== 0) {
      process.stderr.write(`tsserve setup: ${path.basename(SETUP_SCRIPT)} exited with ${code}\n`);
      return code;
    }
    if (!onPath("java", process.env.PATH)) {
      process.stderr.write(
        "tsserve setup: warning: no `java` on PATH; TorchServe needs a Java runtime (for example openjdk-17-jre-headless)\n",
      );
    }
    process.stderr.write(`tsserve setup: ${venv} is ready; \`tsserve start\` uses ${path.join(venv, "bin", "torchserve")}\n`);
    return 0;
  },
};

export default command;

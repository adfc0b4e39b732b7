// tsserve setup runs scripts/setup-venv.sh (the script this checkout's setup
// runs) for the project's .venv; the script makes a venv, installs the
// requirement files, and does nothing while their stamp matches.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const BIN = path.join(ROOT, "bin", "tsserve.mjs");
const SCRIPT = path.join(ROOT, "scripts", "setup-venv.sh");

describe("tsserve setup", () => {
  it("runs setup-venv.sh with the shim's requirements for the project's .venv", () => {
    const project = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "setup-proj-")));
    fs.writeFileSync(path.join(project, "package.json"), "{}");
    fs.mkdirSync(path.join(project, "sub"));
    const r = spawnSync(process.execPath, [BIN, "setup", "--dry-run"], { cwd: path.join(project, "sub"), encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`bash ${SCRIPT} ${path.join(project, ".venv")} ${path.join(ROOT, "python_shim", "requirements.txt")}`);
    const custom = spawnSync(process.execPath, [BIN, "setup", "--dry-run", "--venv", "envs/ts", "--python", "python3.11"], {
      cwd: project,
      encoding: "utf8",
    });
    expect(custom.stdout.trim()).toBe(
      `bash ${SCRIPT} --python python3.11 ${path.join(project, "envs", "ts")} ${path.join(ROOT, "python_shim", "requirements.txt")}`,
    );
  });

  it("setup-venv.sh makes the venv once, and again only when the requirements change", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "setup-venv-"));
    const req = path.join(dir, "requirements.txt");
    fs.writeFileSync(req, "# nothing to install\n");
    const venv = path.join(dir, ".venv");
    const run = () => spawnSync("bash", [SCRIPT, venv, req], { encoding: "utf8", timeout: 120_000 });
    const first = run();
    expect(first.status, first.stderr).toBe(0);
    expect(first.stderr).toContain(`creating the Python venv at ${venv}`);
    expect(fs.existsSync(path.join(venv, "bin", "python"))).toBe(true);
    const second = run();
    expect(second.status).toBe(0);
    expect(second.stderr).toBe("");
    fs.appendFileSync(req, "# changed\n");
    expect(run().stderr).toContain("creating the Python venv");
    const missing = spawnSync("bash", [SCRIPT, venv, path.join(dir, "nope.txt")], { encoding: "utf8" });
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain("requirements file not found");
  }, 180_000);
});

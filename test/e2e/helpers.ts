import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { workPaths } from "../../src/client/paths.ts";
import { allProcs, stillRunning } from "../../src/client/procs.ts";

export const ROOT = path.resolve(import.meta.dirname, "../..");
export const CLI = path.join(ROOT, "bin", "tsserve.mjs");
export const TINY_HANDLER = path.join(ROOT, "handlers", "llama-2-7b-chat.ts");
export const TINY_CONFIG = path.join(ROOT, "configs", "tiny-llama-2-chat.yaml");

export const SEED_REQUEST = { seed: 0, prompt: "Alan Turing was a ", max_tokens: 128, temperature: 0.7, top_p: 0.7, top_k: 50, logprobs: 0, stop: [] };
/** What AgentInstruct's HELM client sends. */
export const HELM_REQUEST = {
  model: "tiny-llama-2-chat",
  prompt: "Question: What is 2 + 2?\nAnswer:",
  temperature: 0,
  n: 1,
  max_tokens: 16,
  best_of: 1,
  logprobs: 1,
  stop: null,
  echo: false,
  top_p: 1,
  top_k: 1,
};

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the tsserve CLI as a user would (an argument list, no shell). */
export function cli(args: string[], timeoutMs = 180_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Every live TorchServe frontend, Python worker, or Node handler process started from this checkout's working folder. */
export function leftovers(): string[] {
  const paths = workPaths();
  return allProcs()
    .filter(stillRunning)
    .filter(
      (p) =>
        p.pid !== process.pid &&
        (p.cmdline.includes("org.pytorch.serve.ModelServer") || p.cmdline.includes("model_service_worker.py") || p.cmdline.includes(paths.tmp)),
    )
    .map((p) => `${p.pid} ${p.cmdline.slice(0, 160)}`);
}

export function writeFile(file: string, text: string): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

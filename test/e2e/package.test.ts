// tsserve as a user gets it: `npm pack` (prepack builds dist/ from the current
// sources, in a staging copy so this checkout's dist/ is left alone), installed
// into an empty project, then `tsserve init`, the scaffolded vitest test, a
// typecheck against the shipped declarations, `tsserve archive`, and the
// archive served on the real TorchServe found in the project's .venv.
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopServer } from "../../src/client/torchserve-process.ts";
import { ROOT, isolatedServer, leftovers, run, type IsolatedServer, type RunResult } from "./helpers.ts";

const server: IsolatedServer = isolatedServer("package");
const stage = path.join(server.scratch, "stage");
const project = path.join(server.scratch, "my-models");
let tarball: string;

/** Runs a command in the project, as a user at a shell would (PATH gets node_modules/.bin through npx). */
function sh(
  command: string,
  args: string[],
  options: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = {
    ...server.env,
    npm_config_loglevel: "error",
    npm_config_audit: "false",
    npm_config_fund: "false",
    npm_config_update_notifier: "false",
  };
  delete env.TSSERVE_VENV;
  delete env.TSSERVE_TORCHSERVE;
  delete env.TSSERVE_ROOT;
  return run(command, args, { cwd: options.cwd ?? project, env: { ...env, ...options.env }, timeoutMs: options.timeoutMs ?? 180_000 });
}

async function ok(pending: RunResult | Promise<RunResult>): Promise<string> {
  const result = await pending;
  if (result.code !== 0) {
    const how = result.timedOut ? "no exit within its time: killed" : `exit ${result.code} ${result.signal ?? ""}`;
    throw new Error(`${how}\n${result.stdout}\n${result.stderr}`);
  }
  return result.stdout;
}

/**
 * The package's sources in a folder of their own, with this checkout's
 * node_modules for building. Timestamps are kept, and this checkout's
 * declarations come along, so prepack skips tsc while they are current.
 */
function stageSources(): void {
  fs.mkdirSync(stage, { recursive: true });
  for (const entry of ["package.json", "README.md", "bin", "src", "configs", "python_shim", "scripts", "dist/types"]) {
    if (!fs.existsSync(path.join(ROOT, entry))) continue;
    fs.cpSync(path.join(ROOT, entry), path.join(stage, entry), {
      recursive: true,
      preserveTimestamps: true,
      filter: (src) => !/(__pycache__|\.egg-info|\.pytest_cache)$/.test(src),
    });
  }
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(stage, "node_modules"));
}

beforeAll(async () => {
  stageSources();
  await ok(sh("npm", ["pack", "--pack-destination", server.scratch], { cwd: stage }));
  tarball = path.join(server.scratch, "tsserve-0.1.0.tgz");
  fs.mkdirSync(project, { recursive: true });
  fs.writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "my-models", private: true, type: "module" }, null, 2));
  // Packages come from npm's cache (this checkout's own install filled it) where it can.
  const versions = JSON.parse(fs.readFileSync(path.join(ROOT, "package-lock.json"), "utf8")).packages as Record<
    string,
    { version: string }
  >;
  const pin = (name: string) => `${name}@${versions[`node_modules/${name}`]!.version}`;
  await ok(
    sh("npm", ["install", "--prefer-offline", tarball, pin("vitest"), pin("typescript"), pin("@types/node")], { timeoutMs: 240_000 }),
  );
}, 420_000);

afterAll(async () => {
  await stopServer({ paths: server.paths });
  expect(leftovers(server.paths)).toEqual([]);
  // The logs stay for a look; the installed packages and the staging copy go.
  for (const dir of [stage, path.join(project, "node_modules")]) fs.rmSync(dir, { recursive: true, force: true });
}, 120_000);

describe("the packed package", () => {
  it("ships what runs: the CLI, dist/ with declarations, the sources, the shim; no tests, benchmarks or fixtures", async () => {
    const listing = (await ok(run("tar", ["-tzf", tarball]))).split("\n").filter(Boolean);
    const files = listing.map((f) => f.replace(/^package\//, ""));
    for (const needed of [
      "bin/tsserve.mjs",
      "dist/cli/main.mjs",
      "dist/lib/index.js",
      "dist/lib/testing.js",
      "dist/types/index.d.ts",
      "dist/types/testing/index.d.ts",
      "src/runtime/index.ts",
      "python_shim/tsserve_shim/handler.py",
      "python_shim/requirements.txt",
      "scripts/setup-venv.sh",
    ]) {
      expect(files).toContain(needed);
    }
    expect(
      files.filter(
        (f) =>
          /^(test|bench|handlers|\.cache|\.work)\//.test(f) || f.includes("/tests/") || f.includes("__pycache__") || f.endsWith(".pyc"),
      ),
    ).toEqual([]);
  });

  it("imports from plain Node, without a TypeScript loader", async () => {
    const out = await ok(
      sh(process.execPath, [
        "--input-type=module",
        "-e",
        'const api = await import("tsserve"); const t = await import("tsserve/testing"); console.log(typeof api.CompletionHandler, typeof api.RequestFailure, typeof t.FakeModel, typeof t.runHandler);',
      ]),
    );
    expect(out.trim()).toBe("function function function function");
  });

  it("init scaffolds a handler whose vitest test passes and which typechecks against the shipped declarations", async () => {
    await ok(sh("npx", ["tsserve", "init", "my-model"]));
    expect(fs.readFileSync(path.join(project, "handlers", "my-model.ts"), "utf8")).toContain('from "tsserve"');
    const tests = await ok(sh("npx", ["vitest", "run"]));
    expect(tests).toMatch(/3 passed/);
    fs.writeFileSync(
      path.join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          noEmit: true,
          allowImportingTsExtensions: true,
          skipLibCheck: true,
          types: ["node"],
        },
        include: ["handlers", "test"],
      }),
    );
    // The declarations carry real types: were they missing or `any`, the expected errors would not occur (TS2578).
    fs.writeFileSync(
      path.join(project, "handlers", "typed.ts"),
      [
        'import { CompletionHandler, RequestFailure } from "tsserve";',
        'import { FakeModel } from "tsserve/testing";',
        "// @ts-expect-error: formatPrompt returns a string",
        "export class Wrong extends CompletionHandler { override formatPrompt(): number { return 1; } }",
        "// @ts-expect-error: FakeModel's prompts are strings",
        "export const n: number[] = new FakeModel().prompts;",
        'export const failure: RequestFailure = RequestFailure.badRequest("x", "prompt");',
        "",
      ].join("\n"),
    );
    await ok(sh("npx", ["tsc", "-p", "."]));
  }, 180_000);

  it("archives the handler and serves it on TorchServe from the project's .venv", async () => {
    const config = path.join(project, "configs", "my-model.yaml");
    // The tiny model, on the transformers engine: what is under test is the packed package; vLLM's load (a minute and a
    // half of a loaded 2-core machine) is proven on the run's shared vLLM server (servers.ts).
    const scaffolded = fs.readFileSync(config, "utf8");
    expect(scaffolded).toMatch(/engine: "vllm"/);
    fs.writeFileSync(
      config,
      scaffolded
        .replace(/model_path: .*/, `model_path: "${path.join(ROOT, ".cache", "tiny-llama")}"`)
        .replace(/engine: "vllm"/, 'engine: "transformers"'),
    );
    const archive = (
      await ok(
        sh("npx", [
          "tsserve",
          "archive",
          "--model-name",
          "my-model",
          "--version",
          "1.0",
          "--handler",
          "handlers/my-model.ts",
          "-c",
          "configs/my-model.yaml",
          "--export-path",
          server.modelStore,
        ]),
      )
    ).trim();
    expect(archive).toBe(path.join(server.modelStore, "my-model.mar"));
    // The project's .venv: this checkout's (a user makes one with `npx tsserve setup`).
    fs.symlinkSync(path.join(ROOT, ".venv"), path.join(project, ".venv"));
    const started = await sh("npx", ["tsserve", "start", "--ts-config", server.tsConfig, "--model-store", server.modelStore]);
    expect(started.stderr).toContain(`using ${path.join(project, ".venv", "bin", "torchserve")} (the project's .venv)`);
    await ok(started);
    await ok(sh("npx", ["tsserve", "register", archive], { timeoutMs: 240_000 }));
    const body = JSON.parse(
      await ok(
        sh("npx", [
          "tsserve",
          "predict",
          "my-model",
          "--json",
          JSON.stringify({ prompt: "Alan Turing was", max_tokens: 4, temperature: 0 }),
        ]),
      ),
    );
    expect(body.choices).toHaveLength(1);
    expect(typeof body.choices[0].text).toBe("string");
    expect(body.choices[0].finish_reason).toMatch(/^(length|stop)$/);
    const bad = await sh("npx", ["tsserve", "predict", "my-model", "--json", JSON.stringify({ max_tokens: 4 })]);
    expect(bad.code).toBe(1);
    expect(bad.stdout + bad.stderr).toMatch(/400[\s\S]*prompt/);
    await ok(sh("npx", ["tsserve", "stop"]));
  }, 300_000);
});

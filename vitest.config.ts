import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// `unit` (unit and contract tests: no server, no model) runs its files in parallel. Two end-to-end
// lanes run one file at a time each (scripts/test.sh runs the two side by side, beside pytest; a plain
// `vitest run` runs the projects one after another): `e2e-shared`, the suites that only need
// a served model, on one TorchServe per engine started once for the run (test/e2e/servers.ts), and
// `e2e-own`, the suites that must own their TorchServe (it is stopped, killed, restarted, started
// through the CLI or with settings of its own). A new e2e file goes to the shared lane unless it is
// named below. The lanes never meet: own servers listen on TSSERVE_E2E_PORT_BASE, shared ones above.
const OWN_SERVER = [
  "bad-input",
  "bench-smoke",
  "continuous-batching",
  "dev",
  "failed-register",
  "faults",
  "inspector",
  "kserve",
  "package",
  "register-replace",
  "serving",
].map((name) => `test/e2e/${name}.test.ts`);

// A handler bundle (handler.mjs) is built JavaScript that Node imports as it is when serving: the tests import it
// natively too, not through vitest's transform (a megabyte each; archive.test.ts took 27 s of transforms).
// Declared before `e2e`, which uses it: the config is bundled, and there `const` becomes `var`, so used
// earlier it was undefined and the e2e lanes transformed every bundle.
const bundlesNative = { deps: { external: [/\/handler\.mjs$/] } };

// A test's own limit: npm test runs pytest and both lanes on two cores, and a first request there waited 30 s.
// The servers' workers compile vLLM's CPU kernels with torch's inductor, whose cache is under $TMPDIR, a
// TorchServe's own folder that each run starts afresh: kept in .cache instead (about 20 CPU-s a run).
// One fork per lane, reused by its files (isolate: false): vitest gives a new fork 5 s to start, which a loaded
// two-core machine overran once (run 22: a file never ran); no e2e file mocks modules or changes process.env.
const e2e = {
  server: bundlesNative,
  testTimeout: 120_000,
  hookTimeout: 600_000,
  fileParallelism: false,
  isolate: false,
  env: { TORCHINDUCTOR_CACHE_DIR: fileURLToPath(new URL(".cache/torchinductor", import.meta.url)) },
};

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          server: bundlesNative,
          include: ["test/unit/**/*.test.ts", "test/contract/**/*.test.ts"],
          // A test's own limit: npm test runs them beside pytest and both e2e lanes on two cores, where the
          // request property tests (10,000 cases each, 4 s alone) took over 30 s.
          testTimeout: 120_000,
          hookTimeout: 120_000,
          maxWorkers: 2,
          // The unit files share one module graph per worker (none keeps state between files): 68 s -> 58 s alone.
          isolate: false,
        },
      },
      {
        test: {
          ...e2e,
          name: "e2e-shared",
          include: ["test/e2e/**/*.test.ts"],
          exclude: OWN_SERVER,
          globalSetup: ["test/e2e/global-setup.ts"],
          sequence: { groupOrder: 1 },
        },
      },
      { test: { ...e2e, name: "e2e-own", include: OWN_SERVER, sequence: { groupOrder: 2 } } },
    ],
  },
});

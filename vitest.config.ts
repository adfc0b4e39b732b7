import { defineConfig } from "vitest/config";

// Two projects. `unit` (unit and contract tests: no server, no model) runs its files in parallel;
// `e2e` (a real TorchServe) runs after it, one file at a time: its suites share one TorchServe per
// engine (test/e2e/servers.ts) and give the CPU to the model.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts", "test/contract/**/*.test.ts"],
          testTimeout: 30_000,
          hookTimeout: 120_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          testTimeout: 30_000,
          hookTimeout: 600_000,
          fileParallelism: false,
          globalSetup: ["test/e2e/global-setup.ts"],
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});

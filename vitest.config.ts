import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 240_000,
    // End-to-end suites share one TorchServe on fixed ports: run files one at a time.
    fileParallelism: false,
  },
});

import fs from "node:fs";
import os from "node:os";
import net from "node:net";
import path from "node:path";
// What tsserve predict tells about a body before it sends it.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { UsageError } from "../../../src/cli/command.ts";
import { checkPredictBody } from "../../../src/cli/commands/predict.ts";

describe("checkPredictBody", () => {
  it("refuses text that is not JSON, saying how to quote it", () => {
    expect(() => checkPredictBody("{prompt: hi}", false)).toThrow(UsageError);
    expect(() => checkPredictBody("{prompt: hi}", false)).toThrow(/not JSON .*--json '\{"prompt": "\.\.\."\}'/);
  });

  it('warns when --stream is given for a body without "stream": true', () => {
    expect(checkPredictBody('{"prompt": "hi"}', true).warning).toMatch(/add "stream": true to the body/);
    expect(checkPredictBody('{"prompt": "hi", "stream": false}', true).warning).toBeDefined();
  });

  it("has nothing to say about a body that matches the flags", () => {
    expect(checkPredictBody('{"prompt": "hi", "stream": true}', true)).toEqual({});
    expect(checkPredictBody('{"prompt": "hi"}', false)).toEqual({});
    expect(checkPredictBody('[{"prompt": "hi"}]', false)).toEqual({});
  });

  it("exits 2 before connecting to anything when the body is not JSON", () => {
    const result = spawnSync(process.execPath, ["bin/tsserve.mjs", "predict", "some-model", "--json", "{prompt: hi}"], {
      encoding: "utf8",
      env: { ...process.env, TSSERVE_CLI_FROM_SOURCES: "1", TSSERVE_WORK_DIR: "/nonexistent/tsserve-work" },
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/^tsserve predict: the request body is not JSON/);
  });

  it("says TorchServe is not running, where it looked and what to do, when nothing answers (exit 1, no stack)", async () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "predict-stopped-"));
    // A recorded server on a port where nothing listens (one just freed).
    const port = await new Promise<number>((resolve) => {
      const server = net.createServer().listen(0, "127.0.0.1", () => {
        const { port: free } = server.address() as net.AddressInfo;
        server.close(() => resolve(free));
      });
    });
    const address = `http://127.0.0.1:${port}`;
    const addresses = { inference: address, management: address, metrics: address };
    fs.writeFileSync(
      path.join(work, "tsserve-state.json"),
      JSON.stringify({ pid: 1, start: "0", modelStore: work, addresses, startedAt: "" }),
    );
    const result = spawnSync(process.execPath, ["bin/tsserve.mjs", "predict", "some-model", "--json", '{"prompt": "hi"}'], {
      encoding: "utf8",
      env: { ...process.env, TSSERVE_CLI_FROM_SOURCES: "1", TSSERVE_WORK_DIR: work },
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toBe(
      `tsserve predict: TorchServe is not running at 127.0.0.1:${port} (connection refused): start it with \`tsserve start\`\n`,
    );
  });
});

// A handler's exception, as its author needs it: the 500's message names the
// function that threw and its TypeScript file:line (mapped through the
// bundle's handler.mjs.map), and the mapped stack goes to stderr (TorchServe's
// model log). The bundle runs as the shim runs it (node --enable-source-maps),
// and without the flag.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { bundleHandler } from "../../../src/bundle/bundle.ts";
import { Connection } from "../../../src/protocol/connection.ts";
import { Handle, Initialize } from "../../../src/protocol/methods.ts";
import { initializeParams } from "./initialize-params.ts";

const HANDLER = "test/fixtures/handlers/throwing-handler.ts";
const PLACE = /in formatPrompt at test\/fixtures\/handlers\/throwing-handler\.ts:11:\d+/;
let bundlePath: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  const outDir = mkdtempSync(path.join(tmpdir(), "tsserve-errors-"));
  ({ bundlePath } = await bundleHandler({ handler: HANDLER, outDir }));
});
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
});

const init = initializeParams("throwing", 2);

async function failOnce(nodeFlags: string[]) {
  // Another working folder than the project's, as a TorchServe worker has.
  const child = spawn(process.execPath, [...nodeFlags, bundlePath], { cwd: tmpdir(), stdio: ["pipe", "pipe", "pipe"] });
  children.push(child);
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const connection = new Connection(child.stdout!, child.stdin!, {});
  await connection.sendRequest(Initialize, init);
  const { responses } = await connection.sendRequest(Handle, {
    batch_id: 1,
    requests: [
      { body: { prompt: "hi" }, request_id: "trace-a" },
      { body: { prompt: "again" }, request_id: "trace-b" },
    ],
  });
  await new Promise((resolve) => setTimeout(resolve, 100));
  return { responses, stderr };
}

describe("a handler that throws", () => {
  it.each([[["--enable-source-maps"]], [[]]])("answers a 500 naming formatPrompt and the .ts file:line (node %j)", async (flags) => {
    const { responses, stderr } = await failOnce(flags);
    for (const response of responses) {
      expect(response).toMatchObject({ ok: false, status: 500 });
      const message = (response as { message: string }).message;
      expect(message).toMatch(/^TypeError: Cannot read properties of undefined \(reading 'length'\)/);
      expect(message).toMatch(PLACE);
    }
    // One log entry per exception, not per request, with the stack in TypeScript.
    expect(stderr.match(/handler error:/g)).toHaveLength(2);
    // Each names the request it failed (its trace id: `tsserve logs --request` finds it).
    expect(stderr).toMatch(/\[tsserve\] \[request trace-a\] handler error: TypeError/);
    expect(stderr).toMatch(/\[tsserve\] \[request trace-b\] handler error: TypeError/);
    expect(stderr).toMatch(/at ThrowingHandler\.formatPrompt \(test\/fixtures\/handlers\/throwing-handler\.ts:11:\d+\)/);
    expect(stderr).toMatch(/preprocess \(src\/completions\/completion-handler\.ts:\d+:\d+\)/);
    expect(stderr).not.toContain("handler.mjs:");
  });
});

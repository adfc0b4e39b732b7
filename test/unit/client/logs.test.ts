import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { LogWatcher, findWorkerFailure, stripLogPrefix } from "../../../src/client/logs.ts";

const P = "2025-01-02T03:04:05,678 [INFO ] W-9000-tiny_1.0-stdout MODEL_LOG - ";
const MODEL_LOG = [
  `${P}Backend worker process started.`,
  `2025-01-02T03:04:05,679 [INFO ] W-9001-other_1.0-stdout MODEL_LOG - Traceback (most recent call last):`,
  `${P}Backend worker process died.`,
  `${P}Traceback (most recent call last):`,
  `${P}  File "/x/ts/model_loader.py", line 143, in load`,
  `${P}    initialize_fn(service.context)`,
  `${P}tsserve_shim.errors.ModelConfigError: handler.model_path '/nope' is not a folder`,
  `2025-01-02T03:04:06,000 [INFO ] W-9000-tiny_1.0-stdout MODEL_LOG - `,
].join("\n");
const TS_LOG =
  "2025-01-02T03:04:06,100 [ERROR] W-9000-tiny_1.0 org.pytorch.serve.wlm.WorkerThread - Load model failed: tiny, error: Worker died.\n";

describe("worker failure from the logs", () => {
  it("strips TorchServe's log prefix", () => {
    expect(stripLogPrefix(`${P}hello - world`)).toBe("hello - world");
    expect(stripLogPrefix("plain")).toBe("plain");
  });

  it("reports the traceback of this model's worker, ending at the exception", () => {
    const { cause, complete } = findWorkerFailure(MODEL_LOG, TS_LOG, "tiny")!;
    expect(complete).toBe(true);
    const lines = cause.split("\n");
    expect(lines[0]).toBe("tsserve_shim.errors.ModelConfigError: handler.model_path '/nope' is not a folder");
    expect(lines[2]).toBe("Traceback (most recent call last):");
    expect(lines.at(-1)).toBe("    initialize_fn(service.context)");
  });

  it("says nothing while workers start normally", () => {
    expect(findWorkerFailure(`${P}Backend worker process started.\n${P}Torch worker started.`, "", "tiny")).toBeUndefined();
  });

  it("falls back to the frontend's line when the model log has no traceback", () => {
    expect(findWorkerFailure("", TS_LOG, "tiny")).toEqual({ cause: expect.stringMatching(/Load model failed: tiny/), complete: false });
  });

  it("reads only what was appended after the watcher started", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "logs-"));
    fs.writeFileSync(path.join(dir, "model_log.log"), "old\n");
    const watcher = new LogWatcher(dir);
    fs.appendFileSync(path.join(dir, "model_log.log"), "new\n");
    fs.writeFileSync(path.join(dir, "ts_log.log"), "created later\n");
    expect(watcher.since("model_log.log")).toBe("new\n");
    expect(watcher.since("ts_log.log")).toBe("created later\n");
  });
});

describe("a handler bundle that fails to start", () => {
  const log = [
    `${P}Backend worker process died.`,
    `${P}Traceback (most recent call last):`,
    `${P}  File "/x/tsserve_shim/handler.py", line 200, in _start_child`,
    `${P}tsserve_shim.errors.ShimConfigError: the handler bundle failed to start: exited (exited with code 7)`,
    `${P}--- node stderr ---`,
    `${P}dies-before-handshake: exiting on purpose`,
    `${P}SyntaxError: Unexpected identifier 'is'`,
    `${P}--- end of node stderr ---`,
    `${P}Some later line`,
  ].join("\n");

  it("reports the Node stderr block that follows the exception, and nothing after it", () => {
    const { cause, complete } = findWorkerFailure(log, TS_LOG, "tiny")!;
    expect(complete).toBe(true);
    const lines = cause.split("\n");
    expect(lines.slice(0, 4)).toEqual([
      "tsserve_shim.errors.ShimConfigError: the handler bundle failed to start: exited (exited with code 7)",
      "--- node stderr ---",
      "dies-before-handshake: exiting on purpose",
      "SyntaxError: Unexpected identifier 'is'",
    ]);
    expect(lines).not.toContain("Some later line");
  });

  it("is unfinished until the exception line and the whole Node stderr block have reached the log", () => {
    const lines = log.split("\n");
    const upTo = (n: number, tsLog = "") => findWorkerFailure(lines.slice(0, n).join("\n"), tsLog, "tiny")!;
    expect(upTo(3).complete).toBe(false); // no exception line yet
    expect(upTo(3).cause).not.toContain("ShimConfigError");
    expect(upTo(7, TS_LOG).complete).toBe(false); // the block has begun but not ended
    expect(upTo(8).complete).toBe(true);
  });
});

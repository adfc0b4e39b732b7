/**
 * Reading TorchServe's logs while something happens: a watcher remembers
 * where each log ended, and the worker-failure finder turns the model log's
 * new lines into the cause (the Python traceback's tail) that `register`
 * reports instead of waiting for a timeout.
 */
import fs from "node:fs";
import path from "node:path";

export class LogWatcher {
  private readonly offsets = new Map<string, number>();

  constructor(
    private readonly dir: string,
    files: string[] = ["model_log.log", "ts_log.log"],
  ) {
    for (const f of files) this.offsets.set(f, this.size(f));
  }

  private size(file: string): number {
    try {
      return fs.statSync(path.join(this.dir, file)).size;
    } catch {
      return 0;
    }
  }

  /** Text appended to `file` since the watcher started. */
  since(file: string): string {
    const start = this.offsets.get(file) ?? 0;
    const full = path.join(this.dir, file);
    let fd: number;
    try {
      fd = fs.openSync(full, "r");
    } catch {
      return "";
    }
    try {
      const end = fs.fstatSync(fd).size;
      if (end < start) return ""; // rotated; ignore
      const buffer = Buffer.alloc(end - start);
      fs.readSync(fd, buffer, 0, buffer.length, start);
      return buffer.toString("utf8");
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** `2024-05-01T10:00:00,123 [INFO ] W-9000-name_1.0-stdout MODEL_LOG - text` → `text`. */
export function stripLogPrefix(line: string): string {
  const match = /^\d{4}-\d\d-\d\dT[\d:,.]+ \[[A-Z ]+\] \S+ \S+ - (.*)$/.exec(line);
  return match ? match[1]! : line;
}

/** Lines of a log that belong to the workers of `modelName` (their thread names are W-PORT-NAME_VERSION-...). */
function linesOf(text: string, modelName: string | undefined): string[] {
  const lines = text.split(/\r?\n/).filter(Boolean);
  if (!modelName) return lines;
  const mine = lines.filter((l) => l.includes(`-${modelName}_`));
  return mine.length ? mine : lines;
}

const FRONTEND_FAILURE =
  /Load model failed|Backend worker process died|Worker died|Backend worker did not respond|Backend worker startup time out|Failed to start workers/;
const WORKER_FAILURE = /Backend worker process died|Traceback \(most recent call last\)|Load model failed/;

interface WorkerFailure {
  /** The cause as a few lines: the exception, the Node stderr the shim attached to it, the end of the traceback. */
  cause: string;
  /** False while the log shows no exception line yet, or an unfinished Node stderr block. */
  complete: boolean;
}

/**
 * If the new log text shows a worker of `modelName` failing to start, the
 * cause, else undefined.
 */
export function findWorkerFailure(modelLog: string, tsLog: string, modelName?: string): WorkerFailure | undefined {
  const tsLines = linesOf(tsLog, undefined).filter((l) => !modelName || l.includes(modelName) || /Worker died|worker process died/.test(l));
  const frontend = tsLines.find((l) => FRONTEND_FAILURE.test(l));
  const model = linesOf(modelLog, modelName).map(stripLogPrefix);
  const start = model.findIndex((l) => WORKER_FAILURE.test(l));
  if (!frontend && start < 0) return undefined;
  if (start < 0) return { cause: stripLogPrefix(frontend!), complete: false };
  const traceStart = model.findIndex((l, i) => i >= start && l.startsWith("Traceback"));
  const from = traceStart >= 0 ? traceStart : start;
  const tail = model.slice(from).filter((l) => !/^\s*$/.test(l));
  // The exception is the first unindented line after the last traceback (of a chain); a Node
  // stderr block the shim appends may follow it, with error lines of its own.
  const lastTrace = tail.map((l) => l.startsWith("Traceback")).lastIndexOf(true);
  const exceptionLine = tail.findIndex((l, i) => i > lastTrace && /^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b/.test(l));
  if (exceptionLine < 0) return { cause: (tail.length > 15 ? ["...", ...tail.slice(-15)] : tail).join("\n"), complete: false };
  // The exception first (with the Node stderr tail the shim appends to it), then the end of its traceback.
  const trace = tail.slice(0, exceptionLine);
  const shown = trace.length > 12 ? ["  ...", ...trace.slice(-12)] : trace;
  const stderr = nodeStderrAfter(tail, exceptionLine);
  return {
    cause: [tail[exceptionLine]!, ...(stderr ?? []), "", ...shown].join("\n"),
    complete: stderr !== undefined || tail[exceptionLine + 1] !== NODE_STDERR_START,
  };
}

const NODE_STDERR_START = "--- node stderr ---";
const NODE_STDERR_END = "--- end of node stderr ---";
const NODE_STDERR_LINES = 10;

/** The last lines of the Node stderr block the shim appends to its exception; undefined if none follows it or it is unfinished. */
function nodeStderrAfter(lines: string[], exceptionLine: number): string[] | undefined {
  if (lines[exceptionLine + 1] !== NODE_STDERR_START) return undefined;
  const rest = lines.slice(exceptionLine + 2);
  const end = rest.indexOf(NODE_STDERR_END);
  if (end < 0) return undefined;
  return [NODE_STDERR_START, ...rest.slice(0, end).slice(-NODE_STDERR_LINES)];
}

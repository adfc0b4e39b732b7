/**
 * One request's lines from TorchServe's logs, in time order (`tsserve logs --request ID`). The shim tags
 * every line about a request with `[request ID]` (the client's X-Request-Id, else TorchServe's request id),
 * the Node child's lines come through the model log with the same tag, and the worker's answer line names
 * TorchServe's own id too (`TorchServe request UUID`). That line ties the two: from a client's id the
 * frontend's lines in ts_log.log (which know only TorchServe's) are found, and from TorchServe's id (the
 * answer's `x-request-id` header) the lines tagged with the client's.
 */
import fs from "node:fs";
import path from "node:path";

/** The logs searched. */
export const REQUEST_LOGS = ["ts_log.log", "model_log.log"] as const;

interface LogLine {
  file: string;
  /** Milliseconds since the epoch read from the line's timestamp (NaN for a line without one). */
  at: number;
  order: number;
  text: string;
}

const TIMESTAMP = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)[,.](\d{3})/;
// The worker's answer line ties the two ids of a request: `[request TRACE] answered ... (TorchServe request UUID)`.
const LINKED_IDS = /\[request ([\x21-\x5c\x5e-\x7e]+)\]|TorchServe request ([\x21-\x7e]+?)\)/g;

function timeOf(line: string): number {
  const match = TIMESTAMP.exec(line);
  return match ? Date.parse(`${match[1]}T${match[2]}.${match[3]}Z`) : Number.NaN;
}

function escaped(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Whether `line` names one of `ids` as a whole (not as part of a longer id). */
function namesAny(line: string, ids: ReadonlySet<string>): boolean {
  for (const id of ids) {
    if (new RegExp(`(?<![A-Za-z0-9_-])${escaped(id)}(?![A-Za-z0-9_-])`).test(line)) return true;
  }
  return false;
}

/** Lines of `texts` (file name -> its text) that name `id`, or TorchServe's id that a line about `id` names. */
export function requestLines(texts: ReadonlyMap<string, string>, id: string): LogLine[] {
  const lines: LogLine[] = [];
  const seen = new Set<string>();
  // model_log.log first: TorchServe's default log config copies the worker's lines into ts_log.log too.
  for (const [file, text] of [...texts].sort(([a], [b]) => (a === "model_log.log" ? -1 : b === "model_log.log" ? 1 : 0))) {
    for (const line of text.split(/\r?\n/)) {
      if (!line || seen.has(line)) continue;
      seen.add(line);
      lines.push({ file, at: timeOf(line), order: lines.length, text: line });
    }
  }
  const ids = new Set([id]);
  for (const line of lines) {
    if (!namesAny(line.text, new Set([id]))) continue;
    for (const match of line.text.matchAll(LINKED_IDS)) for (const linked of (match[1] ?? match[2]!).split(",")) ids.add(linked);
  }
  const mine = withContinuations(lines, new Set(lines.filter((line) => namesAny(line.text, ids))));
  // Time order across files; the files' order (model_log first) where the times are equal (or a line has none).
  return mine.sort((a, b) => (a.at === b.at || Number.isNaN(a.at - b.at) ? a.order - b.order : a.at - b.at));
}

const NODE_LINE = /MODEL_LOG - \[node (\d+)\] (.*)$/;

/**
 * The chosen lines and, after a Node child's line among them, that child's next lines that are no message
 * of their own (no `[tsserve]` tag): the rest of its text, e.g. the stack of a handler error.
 */
function withContinuations(lines: readonly LogLine[], chosen: Set<LogLine>): LogLine[] {
  let child: string | undefined;
  for (const line of lines) {
    const node = NODE_LINE.exec(line.text);
    if (chosen.has(line)) child = node?.[1];
    else if (child !== undefined && node?.[1] === child && !node[2]!.startsWith("[tsserve]")) chosen.add(line);
    else if (node || line.file === "model_log.log") child = undefined;
  }
  return lines.filter((line) => chosen.has(line));
}

/** The texts of the request logs found in `dir` (those missing are left out). */
export function readRequestLogs(dir: string): Map<string, string> {
  const texts = new Map<string, string>();
  for (const file of REQUEST_LOGS) {
    const full = path.join(dir, file);
    if (fs.existsSync(full)) texts.set(file, fs.readFileSync(full, "utf8"));
  }
  return texts;
}

/** One output line: the log it came from, then the line as TorchServe wrote it. */
export function formatRequestLine(line: LogLine): string {
  return `${line.file.replace(/\.log$/, "").padEnd(9)} ${line.text}`;
}

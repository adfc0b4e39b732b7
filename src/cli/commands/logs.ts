import { workPaths } from "../../client/paths.ts";
import { formatRequestLine, readRequestLogs, requestLines, REQUEST_LOGS } from "../../client/request-log.ts";
import { UsageError, type Command } from "../command.ts";

const usage = `Usage: tsserve logs --request ID [--log-dir DIR]

Prints one request's lines from every TorchServe log (${REQUEST_LOGS.join(", ")}) in time order: the
frontend's, the worker's, the Node child's and the engine's (docs/operations.md, "Tracing a request").
ID is the client's X-Request-Id (an error body's error.request_id) or TorchServe's request id (every
answer's x-request-id header): either finds the request's lines.

Options:
  --request ID     the request to follow
  --log-dir DIR    TorchServe's log folder (default: the one \`tsserve start\` uses)`;

const command: Command = {
  name: "logs",
  summary: "print one request's lines from every log, in order (--request ID)",
  usage,
  options: { request: { type: "string" }, "log-dir": { type: "string" } },
  async run({ values }) {
    const id = values.request as string | undefined;
    if (!id) throw new UsageError(`--request ID is required\n\n${usage}`);
    const dir = (values["log-dir"] as string | undefined) ?? workPaths().logs;
    const texts = readRequestLogs(dir);
    if (texts.size === 0) throw new UsageError(`no TorchServe logs in ${dir} (${REQUEST_LOGS.join(", ")})`, 1);
    const lines = requestLines(texts, id);
    if (lines.length === 0) {
      process.stderr.write(`tsserve logs: no line names request ${id} in ${dir}\n`);
      return 1;
    }
    process.stdout.write(`${lines.map(formatRequestLine).join("\n")}\n`);
  },
};

export default command;

import fs from "node:fs";
import { connect } from "../../client/torchserve-process.ts";
import { UsageError, type Command } from "../command.ts";

const usage = `Usage: tsserve predict NAME (--json BODY | --file FILE) [--stream]

Sends one inference request to /predictions/NAME (with the inference token) and prints the
response body. Exit code 1 when TorchServe answers with an error status.

Options:
  --json BODY   the request body, JSON text
  --file FILE   read the request body from FILE ("-" for stdin)
  --stream      print the response's chunks as they arrive`;

/**
 * What the CLI can tell about a body before sending it: text that is not
 * JSON is refused here (usually shell quoting; TorchServe would answer 400),
 * and `--stream` without `"stream": true` in the body is a warning (the model
 * then answers in one piece).
 */
export function checkPredictBody(body: string, stream: boolean): { warning?: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (error) {
    throw new UsageError(
      `the request body is not JSON (${(error as Error).message}); in a shell, quote it with single quotes: --json '{"prompt": "..."}'`,
    );
  }
  const asked = typeof parsed === "object" && parsed !== null && (parsed as { stream?: unknown }).stream === true;
  if (stream && !asked)
    return {
      warning:
        '--stream prints chunks as they come, but the body has no "stream": true, so the model answers in one piece: add "stream": true to the body',
    };
  return {};
}

const command: Command = {
  name: "predict",
  summary: "send an inference request and print the response",
  usage,
  positionals: true,
  options: {
    json: { type: "string" },
    file: { type: "string" },
    stream: { type: "boolean", default: false },
  },
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new UsageError(`expected one model NAME\n\n${usage}`);
    const json = values.json as string | undefined;
    const file = values.file as string | undefined;
    if ((json === undefined) === (file === undefined)) throw new UsageError(`give exactly one of --json and --file\n\n${usage}`);
    const body = json ?? fs.readFileSync(file === "-" ? 0 : file!, "utf8");
    const { warning } = checkPredictBody(body, values.stream as boolean);
    if (warning) process.stderr.write(`tsserve predict: warning: ${warning}\n`);
    // `tsserve predict ... | head` closes the pipe early: that is not an error.
    process.stdout.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EPIPE") process.exit(0);
      throw error;
    });
    const client = connect();
    const name = positionals[0]!;
    let status: number;
    if (values.stream) {
      let last = "";
      ({ status } = await client.predictStream(name, body, (chunk) => {
        process.stdout.write(chunk);
        last = chunk;
      }));
      if (!last.endsWith("\n")) process.stdout.write("\n");
    } else {
      const result = await client.predict(name, body);
      status = result.status;
      process.stdout.write(result.body.endsWith("\n") ? result.body : `${result.body}\n`);
    }
    if (status >= 400) {
      process.stderr.write(`tsserve predict: HTTP ${status}\n`);
      return 1;
    }
  },
};

export default command;

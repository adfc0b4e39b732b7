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

import { TorchServeError } from "../../client/http.ts";
import { connect } from "../../client/torchserve-process.ts";
import { UsageError, type Command } from "../command.ts";

const usage = `Usage: tsserve unregister NAME [VERSION]

Unregisters a model; TorchServe stops its workers (and their Node handler processes).`;

const command: Command = {
  name: "unregister",
  summary: "unregister a model",
  usage,
  positionals: true,
  options: {},
  async run({ positionals }) {
    if (positionals.length < 1 || positionals.length > 2) throw new UsageError(`expected NAME [VERSION]\n\n${usage}`);
    try {
      const result = await connect().unregisterModel(positionals[0]!, positionals[1]);
      process.stdout.write(`${result.status}\n`);
    } catch (error) {
      if (error instanceof TorchServeError) {
        process.stderr.write(`tsserve unregister: TorchServe answered ${error.status}: ${error.message}\n`);
        return 1;
      }
      throw error;
    }
  },
};

export default command;

import { TorchServeError } from "../../client/http.ts";
import { connect } from "../../client/torchserve-process.ts";
import { restartWorkers } from "../../client/workers.ts";
import { UsageError, type Command } from "../command.ts";

const usage = `Usage: tsserve restart-workers NAME [--timeout SECONDS]

Stops every worker of a model and starts as many again (TorchServe's scale to 0, then back to the
model's minimum and maximum), and waits until they are READY; prints them (JSON).

TorchServe 0.12 restarts a worker that died under asyncCommunication in place and never marks it
loaded (the management API shows it UNLOADING; with requests in flight when it died, the model
answers nothing). The worker then asks for this by itself; this command does it by hand.
docs/operations.md has the details.

Options:
  --timeout SECONDS   give up when the workers are not READY after this long (default 3600)`;

const command: Command = {
  name: "restart-workers",
  summary: "stop a model's workers and start them again, waiting until they are READY",
  usage,
  positionals: true,
  options: { timeout: { type: "string" } },
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new UsageError(`expected one NAME\n\n${usage}`);
    const timeout = values.timeout === undefined ? 3600 : Number(values.timeout);
    if (!Number.isFinite(timeout) || timeout <= 0)
      throw new UsageError(`--timeout ${String(values.timeout)}: must be a number of seconds above 0`);
    try {
      const result = await restartWorkers(connect(), positionals[0]!, {
        timeoutMs: timeout * 1000,
        onProgress: (message) => process.stderr.write(`tsserve restart-workers: ${message}\n`),
      });
      process.stdout.write(`${JSON.stringify({ model: positionals[0], ...result }, null, 2)}\n`);
    } catch (error) {
      if (error instanceof TorchServeError) {
        process.stderr.write(`tsserve restart-workers: TorchServe answered ${error.status}: ${error.message}\n`);
        return 1;
      }
      if (error instanceof Error) {
        process.stderr.write(`tsserve restart-workers: ${error.message}\n`);
        return 1;
      }
      throw error;
    }
  },
};

export default command;

import { TorchServeError } from "../../client/http.ts";
import { workPaths } from "../../client/paths.ts";
import { connect, readState, runningServer } from "../../client/torchserve-process.ts";
import { UsageError, type Command } from "../command.ts";

const usage = `Usage: tsserve status [NAME]

Without NAME: whether TorchServe runs, and each registered model with its workers' states.
With NAME: TorchServe's description of that model (JSON).`;

const command: Command = {
  name: "status",
  summary: "show TorchServe's health and the registered models",
  usage,
  positionals: true,
  options: {},
  async run({ positionals }) {
    if (positionals.length > 1) throw new UsageError(`expected at most one NAME\n\n${usage}`);
    const paths = workPaths();
    const client = connect(paths);
    try {
      if (positionals[0]) {
        process.stdout.write(`${JSON.stringify(await client.describeModel(positionals[0]), null, 2)}\n`);
        return;
      }
      const java = runningServer(paths);
      const ping = await client.ping(AbortSignal.timeout(5000)).catch((error: Error) => ({ status: `not answering (${error.message})` }));
      const list = java || ping.status === "Healthy" ? await client.listModels() : { models: [] };
      const models = [];
      for (const m of list.models) {
        const [d] = await client.describeModel(m.modelName);
        models.push({
          modelName: m.modelName,
          modelVersion: d?.modelVersion,
          modelUrl: m.modelUrl,
          workers: (d?.workers ?? []).map((w) => ({ id: w.id, status: w.status, pid: w.pid })),
        });
      }
      const state = readState(paths);
      const report = { torchserve: ping.status, pid: java?.pid ?? null, addresses: state?.addresses ?? client.addresses, models };
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return java ? 0 : 1;
    } catch (error) {
      if (error instanceof TorchServeError) {
        process.stderr.write(`tsserve status: TorchServe answered ${error.status}: ${error.message}\n`);
        return 1;
      }
      throw error;
    }
  },
};

export default command;

import { ServerError, startServer } from "../../client/torchserve-process.ts";
import { UsageError, type Command } from "../command.ts";

const usage = `Usage: tsserve start [--model-store DIR] [--ts-config FILE] [--port-base P] [--models NAME=ARCHIVE ...] [--torchserve PATH]

Starts TorchServe in the background in the project's working folder .work/torchserve/
(logs, key_file.json) and waits until it answers /ping. The torchserve launcher is, in
this order: --torchserve, $TSSERVE_TORCHSERVE, $TSSERVE_VENV/bin, the project's .venv
(\`tsserve setup\` makes one), tsserve's own .venv, then torchserve on PATH.

Options:
  --model-store DIR   where archives are registered from (default: model_store of the
                      config, else .work/torchserve/model-store)
  --ts-config FILE    TorchServe config.properties (default: configs/config.properties)
  --port-base P       listen on loopback from port P: inference P, management P+1, metrics P+2,
                      gRPC inference P+10 and management P+11 (the other settings from --ts-config)
  --models SPEC       a model to load at start, NAME=ARCHIVE in the model store (repeatable)
  --timeout S         seconds to wait for /ping (default 120)
  --torchserve PATH   the torchserve launcher to run (a path, or a name on PATH)`;

/** `--port-base P`: P and P+11 must both be ports. */
export function parsePortBase(raw: unknown): number | undefined {
  if (raw === undefined) return undefined;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1024 || port + 11 > 65535)
    throw new UsageError(`--port-base must be an integer from 1024 to 65524, not "${raw}"`);
  return port;
}

const command: Command = {
  name: "start",
  summary: "start TorchServe and wait until it answers /ping",
  usage,
  positionals: true,
  options: {
    "model-store": { type: "string" },
    "ts-config": { type: "string" },
    models: { type: "string", multiple: true },
    timeout: { type: "string" },
    torchserve: { type: "string" },
    "port-base": { type: "string" },
  },
  async run({ values, positionals }) {
    // `--models a=x.mar b=y.mar` as torchserve takes it: extra positionals are more models.
    const models = [...((values.models as string[] | undefined) ?? []), ...positionals];
    if (positionals.length && !values.models) throw new UsageError(`unexpected argument ${positionals[0]}\n\n${usage}`);
    const timeout = values.timeout === undefined ? 120 : Number(values.timeout);
    if (!Number.isFinite(timeout) || timeout <= 0) throw new UsageError("--timeout must be a positive number of seconds");
    const portBase = parsePortBase(values["port-base"]);
    try {
      await startServer({
        modelStore: values["model-store"] as string | undefined,
        tsConfig: values["ts-config"] as string | undefined,
        models,
        timeoutMs: timeout * 1000,
        torchserve: values.torchserve as string | undefined,
        portBase,
        onProgress: (m) => process.stderr.write(`tsserve start: ${m}\n`),
      });
    } catch (error) {
      if (error instanceof ServerError && error.exitCode === 2) throw new UsageError(error.message);
      throw error;
    }
  },
};

export default command;

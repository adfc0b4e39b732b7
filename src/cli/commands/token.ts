import { isExpired, readKeyFile } from "../../client/keys.ts";
import { keyedWorkPaths, type WorkPaths } from "../../client/paths.ts";
import { connect } from "../../client/torchserve-process.ts";
import { UsageError, type Command } from "../command.ts";

const usage = `Usage: tsserve token [inference|management|api] [--renew]

Prints TorchServe's current key (from .work/torchserve/key_file.json, or
$TSSERVE_WORK_DIR's, or that of the demo started with --port-base), for
curl -H "Authorization: Bearer $(npx tsserve token)". An expired inference or
management key is renewed first (with the API key); --renew forces a new one.`;

const command: Command = {
  name: "token",
  summary: "print TorchServe's current inference or management key",
  usage,
  positionals: true,
  options: { renew: { type: "boolean", default: false } },
  async run({ values, positionals }) {
    const kind = (positionals[0] ?? "inference").toLowerCase();
    if (positionals.length > 1 || !["inference", "management", "api"].includes(kind)) {
      throw new UsageError(`expected inference, management or api\n\n${usage}`);
    }
    let paths: WorkPaths;
    try {
      paths = keyedWorkPaths();
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    const keys = readKeyFile(paths.keyFile);
    if (!keys)
      throw new UsageError(`no key file at ${paths.keyFile}: is TorchServe running (\`tsserve start\`) with token authorization on?`);
    if (kind === "api") {
      process.stdout.write(`${keys.API.key}\n`);
      return;
    }
    const k = kind as "inference" | "management";
    const client = connect(paths);
    const key = values.renew ? await client.renewKey(k) : undefined;
    const current = readKeyFile(paths.keyFile);
    const fresh = key ?? (current && isExpired(current, k) ? await client.renewKey(k) : current?.[k].key);
    process.stdout.write(`${fresh}\n`);
  },
};

export default command;

import { stopServer } from "../../client/torchserve-process.ts";
import type { Command } from "../command.ts";

const usage = `Usage: tsserve stop

Stops the TorchServe started by \`tsserve start\` and waits until no TorchServe frontend,
Python worker or Node handler process of it remains (SIGKILL after 30 s).`;

const command: Command = {
  name: "stop",
  summary: "stop TorchServe and wait for all its processes to exit",
  usage,
  options: {},
  async run() {
    const result = await stopServer({ onProgress: (m) => process.stderr.write(`tsserve stop: ${m}\n`) });
    if (!result.wasRunning && result.killed.length === 0) process.stderr.write("tsserve stop: TorchServe is not running\n");
    else
      process.stderr.write(`tsserve stop: stopped${result.killed.length ? ` (${result.killed.length} process(es) needed SIGKILL)` : ""}\n`);
  },
};

export default command;

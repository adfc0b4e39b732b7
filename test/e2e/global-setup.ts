// The e2e project's global set-up: the shared TorchServes (servers.ts) start on first use, in a
// folder cleared of any earlier run's, and are stopped here once every suite is done.
import { stopShared, type Engine } from "./servers.ts";

const ENGINES: Engine[] = ["transformers", "vllm"];

export async function setup(): Promise<void> {
  for (const engine of ENGINES) await stopShared(engine); // a run that was killed left one behind
}

export async function teardown(): Promise<void> {
  const left = (await Promise.all(ENGINES.map(stopShared))).flat();
  if (left.length > 0) throw new Error(`processes of the shared TorchServes left after stopping them:\n${left.join("\n")}`);
}

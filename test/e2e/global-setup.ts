// The e2e project's global set-up: the shared TorchServes (servers.ts) start on first use, in a
// folder cleared of any earlier run's, and are stopped here once every suite is done.
import { stopShared, unregisterVllmModel, VLLM_GONE_WITHIN_MS, type Engine } from "./servers.ts";

const ENGINES: Engine[] = ["transformers", "vllm"];

export async function setup(): Promise<void> {
  for (const engine of ENGINES) await stopShared(engine); // a run that was killed left one behind
}

export async function teardown(): Promise<void> {
  // The vLLM model is unregistered first: its engine processes must end with the worker TorchServe kills.
  const vllmLeft = await unregisterVllmModel();
  const left = (await Promise.all(ENGINES.map(stopShared))).flat();
  if (vllmLeft.length > 0) {
    throw new Error(
      `vLLM's processes outlived their worker by ${VLLM_GONE_WITHIN_MS} ms after unregister:\n${vllmLeft.map((p) => `${p.pid} ${p.cmdline}`).join("\n")}`,
    );
  }
  if (left.length > 0) throw new Error(`processes of the shared TorchServes left after stopping them:\n${left.join("\n")}`);
}

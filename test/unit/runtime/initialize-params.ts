import { PROTOCOL_VERSION } from "../../../src/protocol/messages.ts";

/** The `initialize` params a shim would send for a small fake model, as the runtime tests' handshake. */
export function initializeParams(modelName: string, batchSize: number, version = PROTOCOL_VERSION) {
  return {
    protocol_version: version,
    model_name: modelName,
    model_dir: "/tmp",
    gpu_id: null,
    batch_size: batchSize,
    model_config: { handler: { model_path: "/m" } },
    model_info: {
      name_or_path: "m",
      context_length: 64,
      vocab_size: 32000,
      bos_token: "<s>",
      eos_token: "</s>",
      chat_template: null,
      device: "cpu",
    },
  };
}

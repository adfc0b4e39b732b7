/**
 * `tsserve kserve`: the storage layout and InferenceService manifest that
 * deploy archives on KServe's TorchServe runtime (src/kserve/).
 */
import fs from "node:fs";
import path from "node:path";
import { ENVELOPE_OF, type KServeProtocol } from "../../kserve/inference-service.ts";
import { KServeInputError, STORAGE_URI_PLACEHOLDER, writeKServeLayout } from "../../kserve/layout.ts";
import { UsageError, type Command } from "../command.ts";

const usage = `Usage: tsserve kserve (--model-store DIR | --archive FILE.mar ...) [--out DIR] [--protocol v1|v2]
                      [--name NAME] [--storage-uri URI] [--gpus N] [--memory SIZE] [-f]

Writes what KServe's TorchServe runtime (the InferenceService "pytorch" predictor) loads:
  OUT/config/config.properties   TorchServe settings for the pod, with model_snapshot
  OUT/config/metrics.yaml        TorchServe's metrics config, with tsserve's LLM metrics
  OUT/model-store/*.mar          the archives
  OUT/inferenceservice.yaml      the InferenceService (protocolVersion, storageUri, GPUs)
Upload OUT's config/ and model-store/ to the storage URI, then kubectl apply the manifest.
KServe sets TorchServe's envelope (kserve for v1, kservev2 for v2); requests are then
{"instances": [request, ...]} (v1) or {"inputs": [{"name", "datatype": "BYTES", "shape": [1],
"data": ["<request JSON>"]}]} (v2), one completion request each.

Options:
  --model-store DIR    every .mar in DIR (tsserve archive's default format)
  --archive FILE       one .mar (repeatable)
  --out DIR            the layout folder (default: kserve)
  --protocol V         KServe protocol: v1 (default) or v2
  --name NAME          the InferenceService's name (default: the first model's)
  --storage-uri URI    where the layout will be uploaded (default: a placeholder to edit)
  --gpus N             nvidia.com/gpu for the predictor (default: minWorkers x
                       num_gpu_per_model of each model; none for deviceType cpu)
  --memory SIZE        memory request and limit for the predictor ("16Gi")
  -f, --force          overwrite an existing layout`;

function archivesIn(dir: string): string[] {
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`--model-store ${dir} is not a directory`);
  const found = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".mar"))
    .sort()
    .map((f) => path.join(dir, f));
  if (found.length === 0) throw new UsageError(`--model-store ${dir} holds no .mar archives`);
  return found;
}

const command: Command = {
  name: "kserve",
  summary: "write a KServe storage layout (config.properties, model-store) and InferenceService",
  usage,
  options: {
    "model-store": { type: "string" },
    archive: { type: "string", multiple: true },
    out: { type: "string", default: "kserve" },
    protocol: { type: "string", default: "v1" },
    name: { type: "string" },
    "storage-uri": { type: "string" },
    gpus: { type: "string" },
    memory: { type: "string" },
    force: { type: "boolean", short: "f", default: false },
  },
  async run({ values }) {
    const protocol = values.protocol as string;
    if (!(protocol in ENVELOPE_OF)) throw new UsageError(`--protocol must be v1 or v2, not "${protocol}"`);
    const store = values["model-store"] as string | undefined;
    const archives = [...(store ? archivesIn(store) : []), ...((values.archive as string[] | undefined) ?? [])];
    if (archives.length === 0) throw new UsageError(`name the archives with --model-store DIR or --archive FILE.mar\n\n${usage}`);
    let gpus: number | undefined;
    if (values.gpus !== undefined) {
      gpus = Number(values.gpus);
      if (!Number.isInteger(gpus) || gpus < 0) throw new UsageError(`--gpus must be a whole number, not "${values.gpus}"`);
    }
    const memory = values.memory as string | undefined;
    if (memory !== undefined && !/^\d+(\.\d+)?([KMGTPE]i?)?$/.test(memory))
      throw new UsageError(`--memory must be a Kubernetes quantity such as 16Gi, not "${memory}"`);
    try {
      const result = await writeKServeLayout({
        archives,
        out: values.out as string,
        protocol: protocol as KServeProtocol,
        name: values.name as string | undefined,
        storageUri: values["storage-uri"] as string | undefined,
        gpus,
        memory,
        force: values.force as boolean,
      });
      for (const w of result.warnings) process.stderr.write(`tsserve kserve: warning: ${w}\n`);
      if (!values["storage-uri"])
        process.stderr.write(`tsserve kserve: storageUri is the placeholder ${STORAGE_URI_PLACEHOLDER}: edit it, or pass --storage-uri\n`);
      process.stderr.write(
        `tsserve kserve: TorchServe's envelope on KServe: ${ENVELOPE_OF[protocol as KServeProtocol]}; nvidia.com/gpu: ${result.gpus}\n`,
      );
      for (const file of [result.properties, ...result.archives, result.manifest]) process.stdout.write(`${file}\n`);
    } catch (error) {
      if (error instanceof KServeInputError) throw new UsageError(error.message);
      throw error;
    }
  },
};

export default command;

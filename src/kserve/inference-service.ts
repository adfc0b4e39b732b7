/**
 * The InferenceService manifest for KServe's `pytorch` predictor (the
 * TorchServe runtime): protocol version, the storageUri the layout is
 * uploaded to, and the GPUs its models' configs ask for.
 */
import YAML from "yaml";

export type KServeProtocol = "v1" | "v2";

/** TorchServe's envelope for each KServe protocol (KServe sets it as TS_SERVICE_ENVELOPE). */
export const ENVELOPE_OF: Record<KServeProtocol, string> = { v1: "kserve", v2: "kservev2" };

interface InferenceServiceOptions {
  name: string;
  protocol: KServeProtocol;
  storageUri: string;
  /** nvidia.com/gpu for the predictor; 0 asks for none. */
  gpus: number;
  /** Memory for the predictor container, as Kubernetes writes it ("16Gi"). */
  memory?: string;
}

/** A Kubernetes object name: lowercase letters, digits and "-", starting with a letter (RFC 1035, which KServe requires). */
export function serviceName(modelName: string): string {
  const name = modelName
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^[^a-z]+/, "")
    .replace(/-+$/, "")
    .slice(0, 63);
  return name || "tsserve-model";
}

export function inferenceService(options: InferenceServiceOptions): string {
  const resources: Record<string, Record<string, string>> = {};
  const limits: Record<string, string> = {};
  const requests: Record<string, string> = {};
  if (options.gpus > 0) limits["nvidia.com/gpu"] = String(options.gpus);
  if (options.memory) {
    limits.memory = options.memory;
    requests.memory = options.memory;
  }
  if (Object.keys(limits).length) resources.limits = limits;
  if (Object.keys(requests).length) resources.requests = requests;
  const manifest = {
    apiVersion: "serving.kserve.io/v1beta1",
    kind: "InferenceService",
    metadata: { name: options.name },
    spec: {
      predictor: {
        pytorch: {
          protocolVersion: options.protocol,
          storageUri: options.storageUri,
          ...(Object.keys(resources).length ? { resources } : {}),
        },
      },
    },
  };
  return [
    "# Written by `tsserve kserve`. Upload the layout folder (config/, model-store/) to storageUri,",
    "# then: kubectl apply -f inferenceservice.yaml",
    YAML.stringify(manifest),
  ].join("\n");
}

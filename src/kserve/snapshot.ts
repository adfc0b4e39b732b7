/**
 * What KServe's TorchServe runtime reads from config/config.properties: the
 * TorchServe settings of a KServe pod and `model_snapshot`, the models to
 * load at start with their worker settings (taken from each archive's
 * model-config.yaml).
 */

import { limitProperties, metricsProperties } from "../client/properties.ts";

/** One model of the layout, as read from its archive. */
export interface KServeModel {
  name: string;
  version: string;
  /** The archive's file name in model-store/. */
  marName: string;
  minWorkers: number;
  maxWorkers: number;
  batchSize: number;
  maxBatchDelay: number;
  responseTimeout: number;
}

/** TorchServe inside a KServe pod listens on 8085: KServe's own proxy takes 8080. */
const KSERVE_TORCHSERVE_PORT = 8085;
/** Where KServe's storage initializer puts the storageUri's contents. */
const KSERVE_MOUNT = "/mnt/models";

function modelSnapshot(models: readonly KServeModel[]): string {
  const byName: Record<string, Record<string, unknown>> = {};
  for (const m of models) {
    byName[m.name] = {
      [m.version]: {
        defaultVersion: true,
        marName: m.marName,
        minWorkers: m.minWorkers,
        maxWorkers: m.maxWorkers,
        batchSize: m.batchSize,
        maxBatchDelay: m.maxBatchDelay,
        responseTimeout: m.responseTimeout,
      },
    };
  }
  return JSON.stringify({ name: "startup.cfg", modelCount: models.length, models: byName });
}

interface PropertiesOptions {
  modelStore?: string;
  port?: number;
  metricsPort?: number;
}

/** config/config.properties for KServe's TorchServe runtime. */
export function kserveProperties(models: readonly KServeModel[], options: PropertiesOptions = {}): string {
  const port = options.port ?? KSERVE_TORCHSERVE_PORT;
  return [
    "# Written by `tsserve kserve`: TorchServe settings for KServe's TorchServe runtime, which",
    `# starts torchserve with --ts-config ${KSERVE_MOUNT}/config/config.properties and reads model_snapshot.`,
    `inference_address=http://0.0.0.0:${port}`,
    `management_address=http://0.0.0.0:${port}`,
    `metrics_address=http://0.0.0.0:${options.metricsPort ?? 8082}`,
    "grpc_inference_port=7070",
    "grpc_management_port=7071",
    "enable_metrics_api=true",
    "# TorchServe's metrics and the shim's LLM metrics (config/metrics.yaml) on the metrics API, for Prometheus.",
    ...metricsProperties(`${KSERVE_MOUNT}/config/metrics.yaml`),
    "number_of_netty_threads=4",
    "job_queue_size=10",
    "# KServe sets TS_SERVICE_ENVELOPE (kserve for protocol v1, kservev2 for v2): TorchServe reads it with this on.",
    "enable_envvars_config=true",
    "# KServe's readiness and inference calls carry no TorchServe token (KServe's own samples run",
    "# --disable-token-auth --enable-model-api): keep the pod's port private to the cluster.",
    "disable_token_authorization=true",
    "enable_model_api=true",
    "# Each archive's requirements.txt (the shim's Python packages and Node as a wheel) is installed",
    "# when the model loads; useVenv: true in its model config keeps the image's torch and TorchServe.",
    "install_py_dep_per_model=true",
    "# Request and response sizes set deliberately (the shim answers 413 for a response over max_response_size);",
    "# archives load by name from the model store only.",
    ...limitProperties(),
    `model_store=${options.modelStore ?? `${KSERVE_MOUNT}/model-store`}`,
    `model_snapshot=${modelSnapshot(models)}`,
    "",
  ].join("\n");
}

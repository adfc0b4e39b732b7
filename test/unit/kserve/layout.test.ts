// tsserve kserve's layout from real archives: config.properties read back as
// Java properties with TorchServe's keys, model_snapshot from each archive's
// model config, the InferenceService's predictor and GPUs.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { createArchive } from "../../../src/archive/archive.ts";
import { parseProperties } from "../../../src/client/properties.ts";
import { serviceName } from "../../../src/kserve/inference-service.ts";
import { KServeInputError, STORAGE_URI_PLACEHOLDER, writeKServeLayout } from "../../../src/kserve/layout.ts";
import { GREETING_CONFIG, GREETING_HANDLER } from "../archive/helpers.ts";

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "kserve-layout-"));
let cpuArchive: string;
let gpuArchive: string;

/** The greeting fixture's config with top-level keys and handler keys replaced. */
function config(name: string, top: Record<string, unknown>, handler: Record<string, unknown> = {}): string {
  const doc = YAML.parse(fs.readFileSync(GREETING_CONFIG, "utf8"));
  Object.assign(doc, top);
  Object.assign(doc.handler, handler);
  if (!path.isAbsolute(doc.handler.model_path))
    doc.handler.model_path = path.resolve(path.dirname(GREETING_CONFIG), doc.handler.model_path);
  const file = path.join(scratch, `${name}.yaml`);
  fs.writeFileSync(file, YAML.stringify(doc));
  return file;
}

beforeAll(async () => {
  const out = path.join(scratch, "archives");
  fs.mkdirSync(out);
  cpuArchive = (
    await createArchive({
      modelName: "small-cpu",
      version: "2.1",
      handler: GREETING_HANDLER,
      configFile: config("cpu", { deviceType: "cpu", minWorkers: 2, maxWorkers: 3, useVenv: true, asyncCommunication: true }),
      exportPath: out,
    })
  ).path;
  gpuArchive = (
    await createArchive({
      modelName: "Big_GPU",
      version: "1.0",
      handler: GREETING_HANDLER,
      configFile: config("gpu", { minWorkers: 2, batchSize: 4, responseTimeout: 600 }, { num_gpu_per_model: 2 }),
      exportPath: out,
    })
  ).path;
}, 120_000);

describe("writeKServeLayout", () => {
  it("writes config.properties with TorchServe's keys and a model_snapshot per archive", async () => {
    const out = path.join(scratch, "layout-1");
    const result = await writeKServeLayout({ archives: [cpuArchive, gpuArchive], out, protocol: "v2" });
    expect(fs.readdirSync(path.join(out, "model-store")).sort()).toEqual(["Big_GPU.mar", "small-cpu.mar"]);
    expect(fs.readFileSync(path.join(out, "model-store", "small-cpu.mar")).equals(fs.readFileSync(cpuArchive))).toBe(true);
    const props = parseProperties(fs.readFileSync(result.properties, "utf8"));
    expect(props.get("inference_address")).toBe("http://0.0.0.0:8085");
    expect(props.get("model_store")).toBe("/mnt/models/model-store");
    expect(props.get("enable_envvars_config")).toBe("true");
    expect(props.get("install_py_dep_per_model")).toBe("true");
    expect(props.get("disable_token_authorization")).toBe("true");
    // The LLM metrics on the metrics API, declared by the metrics config written beside config.properties.
    expect(props.get("metrics_mode")).toBe("prometheus");
    expect(props.get("metrics_config")).toBe("/mnt/models/config/metrics.yaml");
    expect(fs.readFileSync(path.join(out, "config", "metrics.yaml"), "utf8")).toContain("name: tsserve_time_to_first_token_seconds_bucket");
    expect(JSON.parse(props.get("model_snapshot")!)).toEqual({
      name: "startup.cfg",
      modelCount: 2,
      models: {
        "small-cpu": {
          "2.1": {
            defaultVersion: true,
            marName: "small-cpu.mar",
            minWorkers: 2,
            maxWorkers: 3,
            batchSize: 1,
            maxBatchDelay: 100,
            responseTimeout: 60,
          },
        },
        Big_GPU: {
          "1.0": {
            defaultVersion: true,
            marName: "Big_GPU.mar",
            minWorkers: 2,
            maxWorkers: 2,
            batchSize: 1,
            maxBatchDelay: 100,
            responseTimeout: 600,
          },
        },
      },
    });
    // batchSize 4 cannot pass the envelope; no useVenv means pip would bring its own torch.
    expect(result.warnings.join("\n")).toMatch(/Big_GPU: batchSize 4 -> 1/);
    expect(result.warnings.join("\n")).toMatch(/Big_GPU: gpu\.yaml has no "useVenv: true".*Add "useVenv: true" to gpu\.yaml/);
    expect(result.warnings.join("\n")).toMatch(/Big_GPU: its model config has no "asyncCommunication: true"/);
    expect(result.warnings.join("\n")).not.toMatch(/small-cpu/);
  });

  it("writes an InferenceService for the pytorch predictor with the configs' GPUs", async () => {
    const out = path.join(scratch, "layout-2");
    const result = await writeKServeLayout({ archives: [cpuArchive, gpuArchive], out, protocol: "v2", memory: "16Gi" });
    const manifest = YAML.parse(fs.readFileSync(result.manifest, "utf8"));
    expect(manifest).toEqual({
      apiVersion: "serving.kserve.io/v1beta1",
      kind: "InferenceService",
      metadata: { name: "small-cpu" },
      spec: {
        predictor: {
          pytorch: {
            protocolVersion: "v2",
            storageUri: STORAGE_URI_PLACEHOLDER,
            // cpu: none; Big_GPU: 2 workers x 2 GPUs.
            resources: { limits: { "nvidia.com/gpu": "4", memory: "16Gi" }, requests: { memory: "16Gi" } },
          },
        },
      },
    });
    const cpuOnly = await writeKServeLayout({
      archives: [cpuArchive],
      out: path.join(scratch, "layout-3"),
      protocol: "v1",
      storageUri: "gs://b/m",
      name: "My_Service",
    });
    expect(YAML.parse(fs.readFileSync(cpuOnly.manifest, "utf8")).spec.predictor.pytorch).toEqual({
      protocolVersion: "v1",
      storageUri: "gs://b/m",
    });
    expect(YAML.parse(fs.readFileSync(cpuOnly.manifest, "utf8")).metadata.name).toBe("my-service");
  });

  it("refuses what it cannot lay out, writing nothing", async () => {
    const out = path.join(scratch, "layout-bad");
    await expect(writeKServeLayout({ archives: [], out, protocol: "v1" })).rejects.toThrow(KServeInputError);
    const tgz = path.join(scratch, "x.tar.gz");
    fs.writeFileSync(tgz, "");
    await expect(writeKServeLayout({ archives: [tgz], out, protocol: "v1" })).rejects.toThrow(/not a \.mar file/);
    await expect(writeKServeLayout({ archives: [cpuArchive, cpuArchive], out, protocol: "v1" })).rejects.toThrow(
      /two archives serve the model "small-cpu"/,
    );
    expect(fs.existsSync(out)).toBe(false);
    await writeKServeLayout({ archives: [cpuArchive], out, protocol: "v1" });
    await expect(writeKServeLayout({ archives: [cpuArchive], out, protocol: "v1" })).rejects.toThrow(
      /refusing to overwrite .*config\.properties/,
    );
    await writeKServeLayout({ archives: [cpuArchive], out, protocol: "v1", force: true });
  });

  it("names services as Kubernetes allows", () => {
    expect(serviceName("Llama-2_7b.chat")).toBe("llama-2-7b-chat");
    expect(serviceName("7b")).toBe("b");
    expect(serviceName("___")).toBe("tsserve-model");
  });
});

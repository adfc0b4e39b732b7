// Settings that pack fine but fail where the archive is served: tsserve
// archive refuses or warns, naming the fix.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import YAML from "yaml";
import { describe, expect, it } from "vitest";
import { createArchive } from "../../../src/archive/archive.ts";
import { ArchiveInputError } from "../../../src/config/input-error.ts";
import {
  batchSizeRefusal,
  hostPackageWarnings,
  missingModelPathRefusal,
  modelPathWarning,
  perModelInstallWarning,
  venvRefusal,
} from "../../../src/archive/deploy-checks.ts";
import { readPackedModelConfig } from "../../../src/archive/reader.ts";
import { GREETING_CONFIG, GREETING_HANDLER, tempDir } from "./helpers.ts";

describe("venvRefusal", () => {
  it("refuses user requirements when the config does not turn the venv on, naming the key and the file", () => {
    const refusal = venvRefusal({ handler: {} }, "my-model.yaml", ["sentencepiece==0.2.0"], "requirements.txt");
    expect(refusal).toMatch(/^requirements\.txt names Python packages \(sentencepiece==0\.2\.0\)/);
    expect(refusal).toContain('Add "useVenv: true" to my-model.yaml');
    expect(refusal).toContain("or leave out --requirements-file");
  });

  it("accepts them with useVenv: true, and has nothing to say about a file of options only", () => {
    expect(venvRefusal({ useVenv: true }, "c.yaml", ["sentencepiece"], "r.txt")).toBeUndefined();
    expect(venvRefusal({}, "c.yaml", ["--extra-index-url https://example.org/simple"], "r.txt")).toBeUndefined();
    expect(venvRefusal({}, "c.yaml", [], "r.txt")).toBeUndefined();
  });

  it('counts only the boolean: useVenv: "yes" is not on', () => {
    expect(venvRefusal({ useVenv: "yes" }, "c.yaml", ["sentencepiece"], "r.txt")).toBeDefined();
  });
});

describe("hostPackageWarnings", () => {
  it("warns about a requirement that would replace the host's torch or TorchServe, however it is spelled", () => {
    const warnings = hostPackageWarnings(["Torch==2.5.0", "sentencepiece", "torch_model_archiver"], "extra.txt");
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toBe(
      "extra.txt: \"Torch==2.5.0\" would replace the serving host's torch (its build matches the host's CUDA and TorchServe): leave it out",
    );
    expect(warnings[1]).toContain("torch-model-archiver");
  });
});

describe("modelPathWarning", () => {
  it("warns about a checkpoint folder that is not on this machine, and not about one that is", () => {
    expect(modelPathWarning("model_path", "/nonexistent/checkpoint")).toMatch(
      /^handler\.model_path \/nonexistent\/checkpoint is not a folder on this machine/,
    );
    expect(modelPathWarning("model_path", tempDir())).toBeUndefined();
    expect(modelPathWarning("model_path", undefined)).toBeUndefined();
  });
});

describe("tsserve archive with a requirements file", () => {
  function setUp(top: Record<string, unknown>, requirements: string) {
    const dir = tempDir();
    const doc = YAML.parse(fs.readFileSync(GREETING_CONFIG, "utf8"));
    Object.assign(doc, top);
    doc.handler.model_path = dir;
    const configFile = path.join(dir, "greeting.yaml");
    fs.writeFileSync(configFile, YAML.stringify(doc));
    const requirementsFile = path.join(dir, "requirements.txt");
    fs.writeFileSync(requirementsFile, requirements);
    const exportPath = path.join(dir, "out");
    fs.mkdirSync(exportPath);
    return { modelName: "greeting", version: "1.0", handler: GREETING_HANDLER, configFile, requirementsFile, exportPath };
  }

  it("refuses packages without useVenv: true, writing nothing", async () => {
    const options = setUp({}, "sentencepiece==0.2.0\n");
    const packed = createArchive(options);
    await expect(packed).rejects.toThrow(ArchiveInputError);
    await expect(packed).rejects.toThrow(/Add "useVenv: true" to greeting\.yaml/);
    expect(fs.readdirSync(options.exportPath)).toEqual([]);
  }, 60_000);

  it("packs them with useVenv: true, warning only about the host's torch", async () => {
    const result = await createArchive(setUp({ useVenv: true }, "sentencepiece==0.2.0\ntorch==2.5.0\n"));
    expect(result.warnings).toEqual([expect.stringMatching(/^requirements\.txt: "torch==2\.5\.0" would replace the serving host's torch/)]);
  }, 60_000);
});

describe("perModelInstallWarning", () => {
  it("warns about an archive without a venv for a TorchServe that installs per model, with the fix", () => {
    expect(perModelInstallWarning({ minWorkers: 1 }, "m.yaml")).toMatch(
      /install_py_dep_per_model=true.*Add "useVenv: true" to m\.yaml.*archive it again$/,
    );
    expect(perModelInstallWarning({ useVenv: true }, "m.yaml")).toBeUndefined();
    expect(perModelInstallWarning(undefined, "m.yaml")).toBeUndefined();
  });
});

describe("batchSizeRefusal", () => {
  it("refuses a --batch-size above 1 for a continuous-batching archive, naming the fix", () => {
    expect(batchSizeRefusal({ asyncCommunication: true }, 4, "m.yaml")).toMatch(
      /^--batch-size 4: m\.yaml has "asyncCommunication: true".*leave out --batch-size/,
    );
    expect(batchSizeRefusal({ asyncCommunication: true }, 1, "m.yaml")).toBeUndefined();
    expect(batchSizeRefusal({ asyncCommunication: true }, undefined, "m.yaml")).toBeUndefined();
    expect(batchSizeRefusal({ asyncCommunication: false }, 4, "m.yaml")).toBeUndefined();
    expect(batchSizeRefusal(undefined, 4, "m.yaml")).toBeUndefined();
  });
});

describe("readPackedModelConfig", () => {
  it("reads back the config an archive packs", async () => {
    const dir = tempDir();
    const { path: archive } = await createArchive({
      modelName: "greeting",
      version: "1.0",
      handler: GREETING_HANDLER,
      configFile: GREETING_CONFIG,
      exportPath: dir,
    });
    const { manifest, config } = await readPackedModelConfig(archive);
    expect(manifest.model.configFile).toBe("greeting.yaml");
    expect(config).toMatchObject({ responseTimeout: 60, handler: { greeting: "hello" } });
  }, 60_000);
});

describe("missingModelPathRefusal (tsserve register, before TorchServe is asked)", () => {
  it("refuses a packed checkpoint path that does not exist here, naming the key and the path", () => {
    const refusal = missingModelPathRefusal({ handler: { model_path: "/nonexistent/tsserve-ckpt" } }, "smol.yaml");
    expect(refusal).toContain("handler.model_path in the archive's smol.yaml is /nonexistent/tsserve-ckpt");
    expect(refusal).toContain("does not exist on this machine");
    expect(missingModelPathRefusal({ handler: { model_path: os.tmpdir(), tokenizer_path: "/nonexistent/tok" } }, "c.yaml")).toContain(
      "handler.tokenizer_path",
    );
  });

  it("lets an existing folder, a relative path and a bare GGUF file name through", () => {
    expect(missingModelPathRefusal({ handler: { model_path: os.tmpdir(), gguf_file: "model.gguf" } }, "c.yaml")).toBeUndefined();
    expect(missingModelPathRefusal({ handler: { model_path: "relative/ckpt" } }, "c.yaml")).toBeUndefined();
    expect(missingModelPathRefusal(undefined, "c.yaml")).toBeUndefined();
  });
});

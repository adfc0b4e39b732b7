import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";
import { describe, expect, it } from "vitest";
import { createArchive, type ArchiveFormatOption } from "../../../src/archive/archive.ts";
import { ArchiveInputError } from "../../../src/config/input-error.ts";
import { VLLM_STARTUP_TIMEOUT_S } from "../../../src/config/packed-config.ts";
import { listArchive, modelFiles, readArchiveFile, readManifest } from "../../../src/archive/reader.ts";
import { GREETING_CONFIG, GREETING_HANDLER, ROOT, recordingBundle, tempDir, zipMethods } from "./helpers.ts";

const SHIM_FILES = (fs.readdirSync(path.join(ROOT, "python_shim", "tsserve_shim"), { recursive: true }) as string[])
  .filter((f) => !f.endsWith(".pyc") && !f.split(path.sep).includes("__pycache__") && f !== "tests")
  .filter((f) => fs.statSync(path.join(ROOT, "python_shim", "tsserve_shim", f)).isFile())
  .map((f) => `tsserve_shim/${f.split(path.sep).join("/")}`);

const EXPECTED = [
  "MAR-INF/MANIFEST.json",
  "greeting.yaml",
  "handler.mjs",
  "handler.mjs.map",
  "requirements.txt",
  "tsserve_handler.py",
  ...SHIM_FILES,
].sort();

function options(exportPath: string, format: ArchiveFormatOption = "default") {
  const req = path.join(exportPath, "..", `req-${path.basename(exportPath)}`, "requirements.txt");
  fs.mkdirSync(path.dirname(req), { recursive: true });
  fs.writeFileSync(req, "# nothing extra\n");
  return {
    modelName: "greeting",
    version: "1.0",
    handler: GREETING_HANDLER,
    configFile: GREETING_CONFIG,
    requirementsFile: req,
    exportPath,
    archiveFormat: format,
  };
}

describe("createArchive", () => {
  it.each([
    ["default", "greeting.mar", 8],
    ["zip-store", "greeting.mar", 0],
    ["tgz", "greeting.tar.gz", undefined],
    ["no-archive", "greeting", undefined],
  ] as const)("writes the %s format as %s", async (format, file, method) => {
    const out = tempDir();
    const result = await createArchive(options(out, format), { bundle: recordingBundle() });
    expect(result.path).toBe(path.join(out, file));
    expect(fs.readdirSync(out)).toEqual([file]);
    const { format: detected, entries } = await listArchive(result.path);
    expect(modelFiles(detected, entries)).toEqual(EXPECTED);
    expect(result.files).toEqual(EXPECTED);
    if (format === "tgz") expect(entries.every((e) => e.name.startsWith("greeting/"))).toBe(true);
    if (method !== undefined) {
      const methods = await zipMethods(result.path);
      expect(new Set(methods.values())).toEqual(new Set([method]));
    }
    const manifest = await readManifest(result.path);
    expect(manifest.model).toEqual({
      modelName: "greeting",
      handler: "tsserve_handler.py",
      modelVersion: "1.0",
      requirementsFile: "requirements.txt",
      configFile: "greeting.yaml",
    });
    expect(manifest.createdOn).toMatch(/^\d\d\/\d\d\/\d{4} \d\d:\d\d:\d\d$/);
    expect((await readArchiveFile(result.path, "greeting.yaml")).toString()).toBe(fs.readFileSync(GREETING_CONFIG, "utf8"));
  });

  it("refuses to overwrite existing output unless forced", async () => {
    const out = tempDir();
    await createArchive(options(out), { bundle: recordingBundle() });
    await expect(createArchive(options(out), { bundle: recordingBundle() })).rejects.toThrow(/already exists.*--force/);
    const again = await createArchive({ ...options(out), force: true, version: "2.0" }, { bundle: recordingBundle() });
    expect((await readManifest(again.path)).model.modelVersion).toBe("2.0");
    expect(fs.readdirSync(out)).toEqual(["greeting.mar"]);
  });

  it("validates the config against the handler's schema (read from its bundle) before writing anything", async () => {
    const out = tempDir();
    const bad = path.join(out, "..", `bad-${path.basename(out)}.yaml`);
    fs.writeFileSync(bad, "handler:\n  model_path: /m\n  greeting: 3\n");
    const calls: string[] = [];
    const error = await createArchive({ ...options(out), configFile: bad }, { bundle: recordingBundle(calls) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ArchiveInputError);
    expect((error as Error).message).toMatch(/handler\.greeting/);
    expect(calls).toEqual([GREETING_HANDLER]);
    expect(fs.readdirSync(out)).toEqual([]);
  });

  it("names a missing handler key and refuses YAML that does not parse", async () => {
    const out = tempDir();
    const missing = path.join(out, "..", `missing-${path.basename(out)}.yaml`);
    fs.writeFileSync(missing, "handler:\n  greeting: hi\n");
    await expect(createArchive({ ...options(out), configFile: missing }, { bundle: recordingBundle() })).rejects.toThrow(
      /handler\.model_path/,
    );
    fs.writeFileSync(missing, "handler: [unclosed\n");
    await expect(createArchive({ ...options(out), configFile: missing }, { bundle: recordingBundle() })).rejects.toThrow(/not valid YAML/);
    expect(fs.readdirSync(out)).toEqual([]);
  });

  it("warns about keys nothing reads, with the key meant, and refuses them with strict", async () => {
    const out = tempDir();
    const typos = path.join(out, "..", `typos-${path.basename(out)}.yaml`);
    fs.writeFileSync(typos, "maxWorker: 1\nhandler:\n  model_path: /m\n  greeting: hi\n  greting_suffix: '!'\n  quantise: nf4\n");
    const result = await createArchive({ ...options(out), configFile: typos }, { bundle: recordingBundle() });
    const unknown = result.warnings.filter((w) => w.includes("unknown key"));
    expect(unknown).toEqual([
      `${typos}: maxWorker: unknown key, not read by TorchServe 0.12's model config; did you mean "maxWorkers"?`,
      `${typos}: handler.greting_suffix: unknown key, not read by greeting-handler.ts's config schema`,
      `${typos}: handler.quantise: unknown key, not read by greeting-handler.ts's config schema; did you mean "quantize"?`,
    ]);
    const strictOut = tempDir();
    const error = await createArchive({ ...options(strictOut), configFile: typos, strict: true }, { bundle: recordingBundle() }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ArchiveInputError);
    expect((error as Error).message).toMatch(/--strict[\s\S]*maxWorker[\s\S]*"maxWorkers"[\s\S]*handler\.quantise[\s\S]*"quantize"/);
    expect(fs.readdirSync(strictOut)).toEqual([]);
  });

  it("adds the did-you-mean lines to a schema refusal (a misspelt required key)", async () => {
    const out = tempDir();
    const misspelt = path.join(out, "..", `misspelt-${path.basename(out)}.yaml`);
    fs.writeFileSync(misspelt, "handler:\n  model_path: /m\n  greetng: hi\n");
    const error = await createArchive({ ...options(out), configFile: misspelt }, { bundle: recordingBundle() }).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/handler\.greeting:[\s\S]*handler\.greetng: unknown key.*did you mean "greeting"\?/);
  });

  it("makes a missing export folder, but only once the input has passed", async () => {
    const parent = tempDir();
    const refused = path.join(parent, "refused", "store");
    await expect(createArchive({ ...options(refused), version: "" }, { bundle: recordingBundle() })).rejects.toThrow(ArchiveInputError);
    expect(fs.existsSync(refused)).toBe(false);
    const store = path.join(parent, "model_store");
    const result = await createArchive(options(store), { bundle: recordingBundle() });
    expect(result.path).toBe(path.join(store, "greeting.mar"));
    const file = path.join(parent, "a-file");
    fs.writeFileSync(file, "");
    await expect(createArchive(options(file), { bundle: recordingBundle() })).rejects.toThrow(/is not a directory/);
  });

  it("refuses a model name torch-model-archiver would refuse", async () => {
    await expect(createArchive({ ...options(tempDir()), modelName: "../evil" }, { bundle: recordingBundle() })).rejects.toThrow(
      /model name/,
    );
  });

  it("rewrites a relative model_path against the config's folder, keeping comments", async () => {
    const out = tempDir();
    const cfgDir = tempDir();
    const cfg = path.join(cfgDir, "rel.yaml");
    fs.writeFileSync(cfg, "# keep me\nhandler:\n  model_path: ../weights/tiny # the checkpoint\n  greeting: hi\n");
    const result = await createArchive({ ...options(out, "no-archive"), configFile: cfg }, { bundle: recordingBundle() });
    const packed = fs.readFileSync(path.join(result.path, "rel.yaml"), "utf8");
    expect(packed).toContain("# keep me");
    expect(YAML.parse(packed).handler.model_path).toBe(path.resolve(cfgDir, "../weights/tiny"));
    expect(fs.readFileSync(cfg, "utf8")).toContain("model_path: ../weights/tiny");
  });

  it("gives a vLLM-engine config that names no startupTimeout vLLM's start-up budget, and says so; one that names it keeps it", async () => {
    const cfgDir = tempDir();
    const bare = path.join(cfgDir, "bare.yaml");
    fs.writeFileSync(bare, "handler:\n  model_path: /models/m\n  engine: vllm\n  greeting: hi\n");
    const logs: string[] = [];
    const result = await createArchive(
      { ...options(tempDir(), "no-archive"), configFile: bare },
      { bundle: recordingBundle(), log: (m) => logs.push(m) },
    );
    expect(YAML.parse(fs.readFileSync(path.join(result.path, "bare.yaml"), "utf8")).startupTimeout).toBe(VLLM_STARTUP_TIMEOUT_S);
    expect(logs).toContainEqual(expect.stringMatching(/^packed config: startupTimeout: 600 \(the vLLM engine starts in minutes/));

    const named = path.join(cfgDir, "named.yaml");
    fs.writeFileSync(named, "startupTimeout: 900\nhandler:\n  model_path: /models/m\n  engine: vllm\n  greeting: hi\n");
    const kept = await createArchive({ ...options(tempDir(), "no-archive"), configFile: named }, { bundle: recordingBundle() });
    expect(YAML.parse(fs.readFileSync(path.join(kept.path, "named.yaml"), "utf8")).startupTimeout).toBe(900);
    const plain = await createArchive(options(tempDir(), "no-archive"), { bundle: recordingBundle() });
    expect(YAML.parse(fs.readFileSync(path.join(plain.path, path.basename(GREETING_CONFIG)), "utf8")).startupTimeout).toBeUndefined();
  });

  it("packs extra files at the top level and a folder's contents as torch-model-archiver does", async () => {
    const out = tempDir();
    const src = tempDir();
    fs.writeFileSync(path.join(src, "vocab.txt"), "a\n");
    fs.mkdirSync(path.join(src, "assets", "deep"), { recursive: true });
    fs.writeFileSync(path.join(src, "assets", "deep", "x.json"), "{}");
    fs.writeFileSync(path.join(src, "assets", "top.json"), "{}");
    const result = await createArchive(
      { ...options(out), extraFiles: [path.join(src, "vocab.txt"), path.join(src, "assets")] },
      { bundle: recordingBundle() },
    );
    expect(result.files).toEqual(expect.arrayContaining(["vocab.txt", "top.json", "deep/x.json"]));
  });

  it.each([".env", "key_file.json", "id_rsa", "server.pem", ".env.production"])(
    "refuses the secret %s in --extra-files unless forced",
    async (name) => {
      const out = tempDir();
      const src = tempDir();
      fs.writeFileSync(path.join(src, name), "secret");
      await expect(createArchive({ ...options(out), extraFiles: [path.join(src, name)] }, { bundle: recordingBundle() })).rejects.toThrow(
        /refusing extra file.*--force/,
      );
      expect(fs.readdirSync(out)).toEqual([]);
      const forced = await createArchive(
        { ...options(out), extraFiles: [path.join(src, name)], force: true },
        { bundle: recordingBundle() },
      );
      expect(forced.files).toContain(name);
      expect(forced.warnings.join("\n")).toContain(name);
    },
  );

  it("refuses secrets inside an extra folder, and model weights", async () => {
    const src = tempDir();
    fs.mkdirSync(path.join(src, "dir"));
    fs.writeFileSync(path.join(src, "dir", "key_file.json"), "{}");
    fs.writeFileSync(path.join(src, "model.safetensors"), "w");
    await expect(
      createArchive({ ...options(tempDir()), extraFiles: [path.join(src, "dir")] }, { bundle: recordingBundle() }),
    ).rejects.toThrow(/key_file\.json/);
    await expect(
      createArchive({ ...options(tempDir()), extraFiles: [path.join(src, "model.safetensors")] }, { bundle: recordingBundle() }),
    ).rejects.toThrow(/weights/);
  });

  it("refuses an extra file that would replace one of tsserve's", async () => {
    const src = tempDir();
    fs.writeFileSync(path.join(src, "handler.mjs"), "evil");
    await expect(
      createArchive({ ...options(tempDir()), extraFiles: [path.join(src, "handler.mjs")] }, { bundle: recordingBundle() }),
    ).rejects.toThrow(/would overwrite handler\.mjs/);
  });
});

/** `node bin/tsserve.mjs archive` of the greeting handler as model "g" with this config, into `out`. */
const archiveGreeting = (config: string, out: string): string[] => [
  path.join(ROOT, "bin", "tsserve.mjs"),
  "archive",
  "--model-name",
  "g",
  "--version",
  "1",
  "--handler",
  GREETING_HANDLER,
  "-c",
  config,
  "--export-path",
  out,
];

describe("tsserve archive (CLI)", () => {
  it("exits 2 naming the bad key, and writes nothing", () => {
    const out = tempDir();
    const bad = path.join(out, "..", `cli-bad-${path.basename(out)}.yaml`);
    fs.writeFileSync(bad, "handler:\n  model_path: /m\n");
    const run = spawnSync(process.execPath, archiveGreeting(bad, out), { encoding: "utf8" });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain("handler.greeting");
    expect(fs.readdirSync(out)).toEqual([]);
  });

  it("prints unknown keys as warnings and archives; with --strict exits 2 and writes nothing", () => {
    const out = tempDir();
    const typos = path.join(out, "..", `cli-typos-${path.basename(out)}.yaml`);
    fs.writeFileSync(typos, "handler:\n  model_path: /m\n  greeting: hi\n  quantise: nf4\n");
    const args = archiveGreeting(typos, out);
    const strict = spawnSync(process.execPath, [...args, "--strict"], { encoding: "utf8" });
    expect(strict.status).toBe(2);
    expect(strict.stderr).toContain(
      'handler.quantise: unknown key, not read by greeting-handler.ts\'s config schema; did you mean "quantize"?',
    );
    expect(fs.readdirSync(out)).toEqual([]);
    const warned = spawnSync(process.execPath, args, { encoding: "utf8" });
    expect(warned.status).toBe(0);
    expect(warned.stderr).toContain("tsserve archive: warning: ");
    expect(warned.stderr).toContain('did you mean "quantize"?');
    expect(fs.readdirSync(out)).toEqual(["g.mar"]);
  });

  it("exits 2 when a required flag is missing", () => {
    const run = spawnSync(process.execPath, [path.join(ROOT, "bin", "tsserve.mjs"), "archive", "--model-name", "g"], { encoding: "utf8" });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain("--version is required");
  });
});

// The same handler archived by tsserve and by the real torch-model-archiver
// (from .venv): same manifest and files, and both load and answer in the real
// TorchServe (the run's shared transformers one), in the zip (.mar), tgz and
// folder formats.
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { createArchive, type ArchiveFormatOption } from "../../src/archive/archive.ts";
import { listArchive, modelFiles, readManifest } from "../../src/archive/reader.ts";
import { readState } from "../../src/client/torchserve-process.ts";
import { registerWatched, stageArchive } from "../../src/client/model-registration.ts";
import { realArchiver } from "../unit/archive/helpers.ts";
import { SEED_REQUEST, TINY_CONFIG, TINY_HANDLER } from "./helpers.ts";
import { sharedServer, type RunningServer } from "./servers.ts";

let server: RunningServer;
let scratch: string;

beforeAll(async () => {
  server = await sharedServer("transformers");
  scratch = fs.mkdtempSync(path.join(server.scratch, "equivalence-"));
}, 240_000);

async function build(name: string, format: ArchiveFormatOption): Promise<{ ours: string; theirs: string }> {
  const oursDir = fs.mkdtempSync(path.join(scratch, "ours-"));
  const theirsDir = fs.mkdtempSync(path.join(scratch, "theirs-"));
  const base = { version: "1.0", handler: TINY_HANDLER, configFile: TINY_CONFIG };
  const ours = await createArchive({ ...base, modelName: `${name}-ours`, exportPath: oursDir, archiveFormat: format });
  // torch-model-archiver packs the same inputs: tsserve's generated shim, bundle and packed config.
  const folder = await createArchive({
    ...base,
    modelName: `${name}-theirs`,
    exportPath: fs.mkdtempSync(path.join(scratch, "src-")),
    archiveFormat: "no-archive",
  });
  const manifest = JSON.parse(fs.readFileSync(path.join(folder.path, "MAR-INF", "MANIFEST.json"), "utf8"));
  const theirs = realArchiver(folder.path, manifest, format, theirsDir);
  return { ours: ours.path, theirs };
}

async function serve(archive: string): Promise<string> {
  const { client, paths } = server;
  const { url, modelName } = await stageArchive(archive, readState(paths)!.modelStore);
  await registerWatched(client, { url, modelName, initialWorkers: 1 }, paths);
  const result = await client.predict(modelName, JSON.stringify({ ...SEED_REQUEST, max_tokens: 8 }));
  await client.unregisterModel(modelName);
  expect(result.status).toBe(200);
  return JSON.parse(result.body).choices[0].text as string;
}

describe.each(["default", "tgz", "no-archive"] as const)("%s format", (format) => {
  it("tsserve archive and torch-model-archiver agree, and TorchServe serves both", async () => {
    const { ours, theirs } = await build(`eq-${format}`, format);
    const [a, b] = [await readManifest(ours), await readManifest(theirs)];
    expect({ ...a, createdOn: "", model: { ...a.model, modelName: "" } }).toEqual({
      ...b,
      createdOn: "",
      model: { ...b.model, modelName: "" },
    });
    const [la, lb] = [await listArchive(ours), await listArchive(theirs)];
    expect(modelFiles(la.format, la.entries)).toEqual(modelFiles(lb.format, lb.entries));
    // Same model, same seed, same handler: the same text from either archive.
    expect(await serve(ours)).toBe(await serve(theirs));
  }, 180_000);
});

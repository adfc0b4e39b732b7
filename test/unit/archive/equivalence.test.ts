// tsserve archive against the real torch-model-archiver 0.12 (from .venv): same
// manifest (all but createdOn), same files, same layout, in every format.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { createArchive } from "../../../src/archive/archive.ts";
import { listArchive, modelFiles, readArchiveFile, readManifest, safeExtract } from "../../../src/archive/reader.ts";
import { GREETING_CONFIG, GREETING_HANDLER, realArchiver, tempDir, zipMethods } from "./helpers.ts";

const FORMATS = ["default", "zip-store", "tgz", "no-archive"] as const;

function digests(dir: string, files: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of files)
    if (f !== "MAR-INF/MANIFEST.json")
      out[f] = crypto
        .createHash("sha256")
        .update(fs.readFileSync(path.join(dir, f)))
        .digest("hex");
  return out;
}

describe("tsserve archive matches torch-model-archiver 0.12", () => {
  let folder: string;
  beforeAll(async () => {
    const src = tempDir();
    const req = path.join(src, "requirements.txt");
    fs.writeFileSync(req, "# shim deps come from .venv\n");
    const result = await createArchive({
      modelName: "greeting",
      version: "1.0",
      handler: GREETING_HANDLER,
      configFile: GREETING_CONFIG,
      requirementsFile: req,
      exportPath: src,
      archiveFormat: "no-archive",
    });
    folder = result.path;
  }, 60_000);

  it.each(FORMATS)(
    "%s: same manifest, files, layout and bytes",
    async (format) => {
      const oursDir = tempDir();
      const theirsDir = tempDir();
      const manifest = JSON.parse(fs.readFileSync(path.join(folder, "MAR-INF", "MANIFEST.json"), "utf8"));
      const ours = await createArchive({
        modelName: "greeting",
        version: "1.0",
        handler: GREETING_HANDLER,
        configFile: GREETING_CONFIG,
        requirementsFile: path.join(folder, "requirements.txt"),
        exportPath: oursDir,
        archiveFormat: format,
      });
      const theirs = realArchiver(folder, manifest, format, theirsDir);
      expect(path.basename(ours.path)).toBe(path.basename(theirs));

      const [a, b] = [await readManifest(ours.path), await readManifest(theirs)];
      expect(b.createdOn).toMatch(/^\d\d\/\d\d\/\d{4} \d\d:\d\d:\d\d$/);
      expect(a.createdOn).toMatch(/^\d\d\/\d\d\/\d{4} \d\d:\d\d:\d\d$/);
      expect({ ...a, createdOn: "" }).toEqual({ ...b, createdOn: "" });
      // Byte for byte, createdOn aside: key order, indentation, no trailing newline.
      const text = async (p: string) => (await readArchiveFile(p, "MAR-INF/MANIFEST.json")).toString().replace(/"createdOn": "[^"]*"/, "");
      expect(await text(ours.path)).toBe(await text(theirs));

      const la = await listArchive(ours.path);
      const lb = await listArchive(theirs);
      expect(la.format).toBe(lb.format);
      expect(modelFiles(la.format, la.entries)).toEqual(modelFiles(lb.format, lb.entries));
      if (format === "tgz") {
        const top = (l: typeof la) => [...new Set(l.entries.map((e) => e.name.split("/")[0]))];
        expect(top(la)).toEqual(["greeting"]);
        expect(top(lb)).toEqual(["greeting"]);
      }
      if (format === "default" || format === "zip-store") {
        expect(new Set((await zipMethods(ours.path)).values())).toEqual(new Set((await zipMethods(theirs)).values()));
      }
      const xa = path.join(tempDir(), "a");
      const xb = path.join(tempDir(), "b");
      const files = await safeExtract(ours.path, xa);
      await safeExtract(theirs, xb);
      // Same bytes in every file: the config, the shim, and the bundle (esbuild output is deterministic).
      expect(digests(xa, files)).toEqual(digests(xb, files));
    },
    60_000,
  );
});

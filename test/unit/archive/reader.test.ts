import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { createArchive } from "../../../src/archive/archive.ts";
import { listArchive, safeExtract, UnsafeArchiveError, unsafeLinkReason, unsafeNameReason } from "../../../src/archive/reader.ts";
import { GREETING_CONFIG, GREETING_HANDLER, recordingBundle, python, tempDir } from "./helpers.ts";

/** Writes a zip with Python's zipfile, which (unlike yazl) stores whatever name it is given. */
function evilZip(entries: { name: string; data?: string; symlink?: string }[]): string {
  const file = path.join(tempDir(), "evil.mar");
  python(
    [
      "import json, sys, zipfile",
      "with zipfile.ZipFile(sys.argv[1], 'w') as z:",
      "    z.writestr('MAR-INF/MANIFEST.json', '{}')",
      "    for e in json.loads(sys.argv[2]):",
      "        info = zipfile.ZipInfo(e['name'])",
      "        if e.get('symlink'):",
      "            info.external_attr = 0o120777 << 16",
      "            z.writestr(info, e['symlink'])",
      "        else:",
      "            z.writestr(info, e.get('data', 'x'))",
    ].join("\n"),
    [file, JSON.stringify(entries)],
  );
  return file;
}

/** Writes a tar.gz with Python's tarfile (names and link targets kept verbatim). */
function evilTgz(entries: { name: string; symlink?: string; hardlink?: string }[]): string {
  const file = path.join(tempDir(), "evil.tar.gz");
  python(
    [
      "import io, json, sys, tarfile",
      "with tarfile.open(sys.argv[1], 'w:gz') as t:",
      "    for e in json.loads(sys.argv[2]):",
      "        info = tarfile.TarInfo(e['name'])",
      "        if e.get('symlink'):",
      "            info.type, info.linkname = tarfile.SYMTYPE, e['symlink']",
      "            t.addfile(info)",
      "        elif e.get('hardlink'):",
      "            info.type, info.linkname = tarfile.LNKTYPE, e['hardlink']",
      "            t.addfile(info)",
      "        else:",
      "            info.size = 1",
      "            t.addfile(info, io.BytesIO(b'x'))",
    ].join("\n"),
    [file, JSON.stringify(entries)],
  );
  return file;
}

async function refusal(archive: string): Promise<string> {
  const error = await listArchive(archive).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(UnsafeArchiveError);
  return (error as Error).message;
}

describe("archive reader", () => {
  it("judges names and link targets", () => {
    expect(unsafeNameReason("a/b.py")).toBeUndefined();
    expect(unsafeNameReason("../x")).toMatch(/\.\./);
    expect(unsafeNameReason("a/../../x")).toMatch(/\.\./);
    expect(unsafeNameReason("/etc/passwd")).toMatch(/absolute/);
    expect(unsafeNameReason("C:/x")).toMatch(/absolute/);
    expect(unsafeLinkReason("m/a/link", "../b", false)).toBeUndefined();
    expect(unsafeLinkReason("m/link", "../../etc", false)).toMatch(/outside/);
    expect(unsafeLinkReason("link", "/etc/passwd", false)).toMatch(/absolute/);
    expect(unsafeLinkReason("m/x", "m/y", true)).toBeUndefined();
    expect(unsafeLinkReason("m/x", "../y", true)).toMatch(/outside/);
  });

  it("refuses zip entries that climb out, are absolute, or link outside", async () => {
    expect(await refusal(evilZip([{ name: "../../evil.py" }]))).toMatch(/"\.\.\/\.\.\/evil\.py".*\.\./);
    expect(await refusal(evilZip([{ name: "/tmp/evil.py" }]))).toMatch(/absolute/);
    expect(await refusal(evilZip([{ name: "link", symlink: "/etc/passwd" }]))).toMatch(/link/);
    expect(await refusal(evilZip([{ name: "d/link", symlink: "../../x" }]))).toMatch(/outside/);
    const fine = await listArchive(evilZip([{ name: "d/link", symlink: "../ok.py" }, { name: "ok.py" }]));
    expect(fine.entries.map((e) => e.type)).toContain("symlink");
  });

  it("refuses tgz entries that climb out, are absolute, or link outside", async () => {
    expect(await refusal(evilTgz([{ name: "m/../../evil.py" }]))).toMatch(/\.\./);
    expect(await refusal(evilTgz([{ name: "/etc/cron.d/evil" }]))).toMatch(/absolute/);
    expect(await refusal(evilTgz([{ name: "m/link", symlink: "/etc/passwd" }]))).toMatch(/absolute/);
    expect(await refusal(evilTgz([{ name: "m/link", symlink: "../../../home" }]))).toMatch(/outside/);
    expect(await refusal(evilTgz([{ name: "m/hard", hardlink: "../etc/shadow" }]))).toMatch(/outside/);
  });

  it("refuses a model folder with a symlink to outside it", async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, "ok.py"), "");
    fs.symlinkSync("/etc/passwd", path.join(dir, "passwd"));
    expect(await refusal(dir)).toMatch(/passwd.*outside/);
  });

  it("extracts nothing from an unsafe archive", async () => {
    const dest = path.join(tempDir(), "out");
    await expect(safeExtract(evilZip([{ name: "ok.py" }, { name: "../escaped.py" }]), dest)).rejects.toBeInstanceOf(UnsafeArchiveError);
    expect(fs.existsSync(path.join(dest, "..", "escaped.py"))).toBe(false);
    expect(fs.existsSync(dest) ? fs.readdirSync(dest) : []).toEqual([]);
  });

  it.each(["default", "zip-store", "tgz", "no-archive"] as const)("extracts a %s archive as TorchServe sees it", async (format) => {
    const out = tempDir();
    const result = await createArchive(
      {
        modelName: "greeting",
        version: "1",
        handler: GREETING_HANDLER,
        configFile: GREETING_CONFIG,
        exportPath: out,
        archiveFormat: format,
      },
      { bundle: recordingBundle() },
    );
    const dest = path.join(tempDir(), "x");
    const files = await safeExtract(result.path, dest);
    expect(files).toEqual(result.files);
    expect(fs.readFileSync(path.join(dest, "greeting.yaml"), "utf8")).toBe(fs.readFileSync(GREETING_CONFIG, "utf8"));
    expect(fs.existsSync(path.join(dest, "tsserve_shim", "handler.py"))).toBe(true);
  });
});

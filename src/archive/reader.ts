/**
 * Reads model archives in every format torch-model-archiver writes (zip
 * `.mar`, `.tar.gz`, a plain folder) and refuses unsafe ones: an entry whose
 * name is absolute or climbs out with `..`, or a link whose target resolves
 * outside the archive. Used by the tests, by `tsserve register` before it
 * copies an archive into the model store, and by `safeExtract`.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import * as tar from "tar";
import yauzl from "yauzl";
import YAML from "yaml";
import { MANIFEST_PATH, Manifest } from "./manifest.ts";

type ArchiveFormat = "zip" | "tgz" | "dir";

interface ArchiveEntry {
  /** The name as stored (tgz entries keep their top folder). */
  name: string;
  type: "file" | "dir" | "symlink" | "hardlink" | "other";
  size: number;
  linkTarget?: string;
}

export class UnsafeArchiveError extends Error {
  constructor(
    readonly archive: string,
    readonly entry: string,
    reason: string,
  ) {
    super(`refusing archive ${archive}: entry "${entry}" ${reason}`);
    this.name = "UnsafeArchiveError";
  }
}

function detectFormat(archive: string): ArchiveFormat {
  const stat = fs.statSync(archive);
  if (stat.isDirectory()) return "dir";
  const head = Buffer.alloc(4);
  const fd = fs.openSync(archive, "r");
  try {
    fs.readSync(fd, head, 0, 4, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (head[0] === 0x1f && head[1] === 0x8b) return "tgz";
  if (head[0] === 0x50 && head[1] === 0x4b) return "zip";
  throw new Error(`${archive} is neither a zip (.mar), a gzipped tar, nor a folder`);
}

/** Why an entry name is unsafe, or undefined. */
export function unsafeNameReason(name: string): string | undefined {
  if (name.length === 0) return "has an empty name";
  if (name.includes("\0")) return "has a NUL byte in its name";
  if (name.startsWith("/") || name.startsWith("\\") || /^[A-Za-z]:/.test(name)) return "has an absolute path";
  if (name.split(/[\\/]/).includes("..")) return 'climbs out of the archive with ".."';
  return undefined;
}

/** Why a link at `name` pointing at `target` is unsafe (it resolves outside the archive root), or undefined. */
export function unsafeLinkReason(name: string, target: string, hard: boolean): string | undefined {
  const t = target.replace(/\\/g, "/");
  if (t.startsWith("/") || /^[A-Za-z]:/.test(t)) return `is a link to the absolute path "${target}"`;
  // A symlink's target is relative to the link's folder; a hard link's to the archive root.
  const folder = hard
    ? []
    : name
        .replace(/\\/g, "/")
        .split("/")
        .slice(0, -1)
        .filter((p) => p && p !== ".");
  let depth = folder.length;
  for (const part of t.split("/")) {
    if (part === "..") depth -= 1;
    else if (part && part !== ".") depth += 1;
    if (depth < 0) return `is a link to "${target}", outside the archive`;
  }
  return undefined;
}

function check(archive: string, entry: ArchiveEntry): ArchiveEntry {
  const reason =
    unsafeNameReason(entry.name) ??
    (entry.linkTarget !== undefined ? unsafeLinkReason(entry.name, entry.linkTarget, entry.type === "hardlink") : undefined) ??
    (entry.type === "other" ? "is not a file, folder or link" : undefined);
  if (reason) throw new UnsafeArchiveError(archive, entry.name, reason);
  return entry;
}

type ZipEntryHandler = (entry: yauzl.Entry, name: string, zip: yauzl.ZipFile) => Promise<void>;

/** Walks a zip with names decoded but NOT validated by yauzl, so we can name the bad entry ourselves. */
async function walkZip(archive: string, onEntry: ZipEntryHandler): Promise<void> {
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.open(archive, { lazyEntries: true, decodeStrings: false, autoClose: false }, (err, z) => (err ? reject(err) : resolve(z!))),
  );
  try {
    await new Promise<void>((resolve, reject) => {
      zip.on("error", reject);
      zip.on("end", () => resolve());
      zip.on("entry", (entry: yauzl.Entry) => {
        const raw = entry.fileName as unknown as Buffer;
        // Bit 11: UTF-8 names; otherwise CP437, whose ASCII range is what archivers write.
        const name = (entry.generalPurposeBitFlag & 0x800) !== 0 ? raw.toString("utf8") : raw.toString("latin1");
        onEntry(entry, name, zip).then(() => zip.readEntry(), reject);
      });
      zip.readEntry();
    });
  } finally {
    zip.close();
  }
}

function openZipEntry(zip: yauzl.ZipFile, entry: yauzl.Entry): Promise<NodeJS.ReadableStream> {
  return new Promise((resolve, reject) => zip.openReadStream(entry, (err, s) => (err ? reject(err) : resolve(s!))));
}

/** Collects a stream with plain events: yauzl's streams for stored entries do not end under `for await`. */
function readStream(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => resolve(Buffer.concat(chunks)));
    stream.on("error", reject);
  });
}

function zipEntryType(entry: yauzl.Entry, name: string): ArchiveEntry["type"] {
  const mode = (entry.externalFileAttributes >>> 16) & 0o170000;
  if (mode === 0o120000) return "symlink";
  if (name.endsWith("/") || mode === 0o040000) return "dir";
  if (mode === 0 || mode === 0o100000) return "file";
  return "other";
}

async function listZip(archive: string): Promise<ArchiveEntry[]> {
  const entries: ArchiveEntry[] = [];
  await walkZip(archive, async (entry, name, zip) => {
    const type = zipEntryType(entry, name);
    const item: ArchiveEntry = { name: name.replace(/\/$/, "") || name, type, size: entry.uncompressedSize };
    if (type === "symlink") item.linkTarget = (await readStream(await openZipEntry(zip, entry))).toString("utf8");
    entries.push(check(archive, item));
  });
  return entries;
}

function tarEntryType(type: string): ArchiveEntry["type"] {
  switch (type) {
    case "File":
    case "OldFile":
    case "ContiguousFile":
      return "file";
    case "Directory":
      return "dir";
    case "SymbolicLink":
      return "symlink";
    case "Link":
      return "hardlink";
    default:
      return "other";
  }
}

async function listTgz(archive: string): Promise<ArchiveEntry[]> {
  const entries: ArchiveEntry[] = [];
  let failure: unknown;
  await tar.t({
    file: archive,
    onReadEntry: (entry) => {
      // Pax headers and GNU long names are folded into the entry by node-tar.
      const type = tarEntryType(entry.type);
      const item: ArchiveEntry = { name: entry.path.replace(/\/$/, "") || entry.path, type, size: entry.size ?? 0 };
      if (entry.linkpath) item.linkTarget = entry.linkpath;
      try {
        entries.push(check(archive, item));
      } catch (error) {
        failure ??= error;
      }
    },
  });
  if (failure) throw failure;
  return entries;
}

async function listDir(archive: string): Promise<ArchiveEntry[]> {
  const root = await fsp.realpath(archive);
  const entries: ArchiveEntry[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const dirent of await fsp.readdir(path.join(root, rel), { withFileTypes: true })) {
      const name = rel ? `${rel}/${dirent.name}` : dirent.name;
      const full = path.join(root, name);
      if (dirent.isSymbolicLink()) {
        const target = await fsp.readlink(full);
        const real = await fsp.realpath(full).catch(() => undefined);
        if (real === undefined || (real !== root && !real.startsWith(root + path.sep))) {
          throw new UnsafeArchiveError(archive, name, `is a link to "${target}", outside the archive`);
        }
        entries.push(check(archive, { name, type: "symlink", size: 0, linkTarget: path.relative(path.dirname(full), real) || "." }));
      } else if (dirent.isDirectory()) {
        entries.push({ name, type: "dir", size: 0 });
        await walk(name);
      } else if (dirent.isFile()) {
        entries.push({ name, type: "file", size: (await fsp.stat(full)).size });
      } else {
        throw new UnsafeArchiveError(archive, name, "is not a file, folder or link");
      }
    }
  };
  await walk("");
  return entries;
}

/** Every entry of the archive, checked; throws UnsafeArchiveError on the first unsafe one. */
export async function listArchive(archive: string): Promise<{ format: ArchiveFormat; entries: ArchiveEntry[] }> {
  const format = detectFormat(archive);
  const entries = format === "zip" ? await listZip(archive) : format === "tgz" ? await listTgz(archive) : await listDir(archive);
  return { format, entries };
}

/** The single top folder TorchServe strips from a tgz, if the archive has one. */
function tgzRoot(entries: ArchiveEntry[]): string | undefined {
  const tops = new Set(entries.map((e) => e.name.split("/")[0]));
  if (tops.size !== 1) return undefined;
  const [top] = tops;
  return entries.some((e) => e.name.includes("/")) ? top : undefined;
}

/** The file names as TorchServe sees them (tgz top folder stripped), files only, sorted. */
export function modelFiles(format: ArchiveFormat, entries: ArchiveEntry[]): string[] {
  const root = format === "tgz" ? tgzRoot(entries) : undefined;
  return entries
    .filter((e) => e.type === "file")
    .map((e) => (root ? e.name.slice(root.length + 1) : e.name))
    .sort();
}

/** One file's bytes from an archive, by its name as TorchServe sees it. */
export async function readArchiveFile(archive: string, name: string): Promise<Buffer> {
  const { format, entries } = await listArchive(archive);
  if (format === "dir") return fsp.readFile(path.join(archive, name));
  if (format === "tgz") {
    const root = tgzRoot(entries);
    const want = root ? `${root}/${name}` : name;
    let found: Buffer | undefined;
    await tar.t({
      file: archive,
      onReadEntry: (entry) => {
        if (entry.path !== want) return entry.resume();
        const chunks: Buffer[] = [];
        entry.on("data", (c: Buffer) => chunks.push(c));
        entry.on("end", () => (found = Buffer.concat(chunks)));
      },
    });
    if (!found) throw new Error(`${archive} has no ${name}`);
    return found;
  }
  let found: Buffer | undefined;
  await walkZip(archive, async (entry, entryName, zip) => {
    if (entryName === name && found === undefined) found = await readStream(await openZipEntry(zip, entry));
  });
  if (!found) throw new Error(`${archive} has no ${name}`);
  return found;
}

export async function readManifest(archive: string): Promise<Manifest> {
  const raw = await readArchiveFile(archive, MANIFEST_PATH);
  return Manifest.parse(JSON.parse(raw.toString("utf8")));
}

/** The model-config.yaml an archive packs (its manifest's `configFile`), parsed; no config when the manifest names none. */
export async function readPackedModelConfig(archive: string): Promise<{ manifest: Manifest; config?: Record<string, unknown> }> {
  const manifest = await readManifest(archive);
  const configFile = manifest.model.configFile;
  if (!configFile) return { manifest };
  const config = (YAML.parse((await readArchiveFile(archive, configFile)).toString("utf8")) ?? {}) as Record<string, unknown>;
  return { manifest, config };
}

/**
 * Unpacks an archive into `dest` (which must not exist or be empty) after
 * checking every entry; tgz entries lose their top folder as in TorchServe.
 * Links are not recreated: only files and folders are written.
 */
export async function safeExtract(archive: string, dest: string): Promise<string[]> {
  const { format, entries } = await listArchive(archive);
  await fsp.mkdir(dest, { recursive: true });
  const realDest = await fsp.realpath(dest);
  const target = (name: string): string => {
    const out = path.resolve(realDest, name);
    if (!out.startsWith(realDest + path.sep)) throw new UnsafeArchiveError(archive, name, "would be written outside the destination");
    return out;
  };
  const files = modelFiles(format, entries);
  if (format === "dir") {
    for (const name of files) {
      await fsp.mkdir(path.dirname(target(name)), { recursive: true });
      await fsp.copyFile(path.join(archive, name), target(name));
    }
    return files;
  }
  if (format === "zip") {
    await walkZip(archive, async (entry, name, zip) => {
      if (zipEntryType(entry, name) !== "file") return;
      const out = target(name);
      await fsp.mkdir(path.dirname(out), { recursive: true });
      await pipeline(await openZipEntry(zip, entry), fs.createWriteStream(out, { flags: "wx" }));
    });
    return files;
  }
  const root = tgzRoot(entries);
  await tar.x({
    file: archive,
    cwd: realDest,
    strict: true,
    strip: root ? 1 : 0,
    filter: (_p, entry) => "type" in entry && tarEntryType(String(entry.type)) === "file",
  });
  return files;
}

/**
 * Where a handler's exception came from. In a bundle every stack frame points
 * into handler.mjs; the bundle's source map (handler.mjs.map, shipped beside
 * it in the archive) turns those frames back into the TypeScript file, line
 * and column the author wrote. The place named is the first frame in the
 * author's code: not in node_modules (where an installed tsserve and its
 * dependencies live), not in Node itself.
 */
import { readFileSync } from "node:fs";
import { SourceMap, type SourceMapPayload } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

interface StackFrame {
  /** The function as V8 names it (`SmolHandler.formatPrompt`), when it has a name. */
  fn?: string;
  file: string;
  line: number;
  column: number;
}

interface ErrorPlace {
  /** The innermost named function of the author's code on the stack (`formatPrompt`). */
  fn?: string;
  /** `handlers/smollm2.ts:14:22` */
  location: string;
}

const FRAME = /^\s*at (?:async )?(?:(.*?) \()?(.*?):(\d+):(\d+)\)?$/;

/** One `at fn (file:line:col)` line of a V8 stack, or undefined for anything else. */
export function parseFrame(line: string): StackFrame | undefined {
  const match = FRAME.exec(line);
  if (!match) return undefined;
  const [, fn, file, lineText, columnText] = match;
  return { ...(fn ? { fn } : {}), file: file!, line: Number(lineText), column: Number(columnText) };
}

/** The generated file a source map describes, and the map, read once on first use. */
class BundleSourceMap {
  #map: SourceMap | null | undefined;

  constructor(
    readonly bundlePath: string,
    private readonly mapPath = `${bundlePath}.map`,
  ) {}

  /** A frame in the bundle, as the TypeScript frame it was built from; any other frame unchanged. */
  mapFrame(frame: StackFrame): StackFrame {
    if (!sameFile(frame.file, this.bundlePath)) return frame;
    const map = this.#load();
    const entry = map?.findEntry(frame.line - 1, frame.column - 1) as
      | { originalSource?: string; originalLine?: number; originalColumn?: number }
      | undefined;
    if (!entry?.originalSource || entry.originalLine === undefined || entry.originalColumn === undefined) return frame;
    return { ...frame, file: entry.originalSource, line: entry.originalLine + 1, column: entry.originalColumn + 1 };
  }

  /** The folder the map names its sources from (its sourceRoot, the handler's project on the build host). */
  sourceRoot(): string | undefined {
    const root = (this.#load()?.payload as { sourceRoot?: string } | undefined)?.sourceRoot;
    if (!root) return undefined;
    try {
      return root.startsWith("file://") ? fileURLToPath(root) : root;
    } catch {
      return undefined;
    }
  }

  #load(): SourceMap | null {
    if (this.#map === undefined) {
      try {
        this.#map = new SourceMap(JSON.parse(readFileSync(this.mapPath, "utf8")) as SourceMapPayload);
      } catch {
        this.#map = null;
      }
    }
    return this.#map;
  }
}

function sameFile(frameFile: string, file: string): boolean {
  const plain = frameFile.startsWith("file://") ? fileURLToPath(frameFile) : frameFile;
  return path.resolve(plain) === path.resolve(file);
}

let bundleMap: BundleSourceMap | undefined;

/** Called once by a bundle's runtime: frames in `bundlePath` are mapped through `bundlePath.map`. */
export function useBundleSourceMap(bundlePath: string): void {
  bundleMap = new BundleSourceMap(bundlePath);
}

function mapped(frame: StackFrame): StackFrame {
  return bundleMap ? bundleMap.mapFrame(frame) : frame;
}

/**
 * A file as the author knows it: relative to the handler's project (Node's
 * --enable-source-maps names sources absolutely, from the map's sourceRoot),
 * else to the working folder (tsx), else as it is.
 */
function shown(file: string): string {
  const plain = file.startsWith("file://") ? fileURLToPath(file) : file;
  if (!path.isAbsolute(plain)) return plain;
  for (const root of [bundleMap?.sourceRoot(), process.cwd()]) {
    if (root === undefined) continue;
    const relative = path.relative(root, plain);
    if (!relative.startsWith("..") && !path.isAbsolute(relative)) return relative;
  }
  return plain;
}

function isAuthorFrame(frame: StackFrame): boolean {
  const file = frame.file.replaceAll("\\", "/");
  return !file.startsWith("node:") && !file.includes("/node_modules/") && !file.startsWith("node_modules/") && file !== "<anonymous>";
}

/** `SmolHandler.formatPrompt` → `formatPrompt`; `Array.map` and the like are not the author's. */
function functionName(fn: string | undefined): string | undefined {
  if (!fn || fn === "<anonymous>" || fn.startsWith("new ")) return fn?.startsWith("new ") ? fn : undefined;
  return fn.split(".").at(-1);
}

/** The error's stack with every bundle frame mapped to its TypeScript source. */
export function mappedStack(error: Error): string {
  const lines = (error.stack ?? `${error.name}: ${error.message}`).split("\n");
  return lines
    .map((line) => {
      const frame = parseFrame(line);
      if (!frame) return line;
      const to = mapped(frame);
      const where = `${shown(to.file)}:${to.line}:${to.column}`;
      return line.replace(/(?:\(?)[^\s(]*:\d+:\d+\)?$/, frame.fn ? `(${where})` : where);
    })
    .join("\n");
}

/** The author's frame an error was thrown from: its function and its TypeScript file:line:column. */
export function errorPlace(error: Error): ErrorPlace | undefined {
  const frames = (error.stack ?? "").split("\n").flatMap((line) => {
    const frame = parseFrame(line);
    return frame ? [mapped(frame)] : [];
  });
  const authors = frames.filter(isAuthorFrame);
  const first = authors[0];
  if (!first) return undefined;
  const fn = authors.map((frame) => functionName(frame.fn)).find((name) => name !== undefined);
  return { ...(fn ? { fn } : {}), location: `${shown(first.file)}:${first.line}:${first.column}` };
}

/** Errors from the other side of the bridge: their messages are already the shim's account of what failed. */
const PROTOCOL_ERRORS = new Set(["RpcError", "ConnectionError"]);

const descriptions = new WeakMap<Error, string>();

/**
 * A thrown error as a 500's message, with the place it was thrown from:
 * `TypeError: x (in formatPrompt at handlers/smollm2.ts:14:22)`. Errors that
 * crossed the bridge keep their message as it is.
 */
export function describeThrown(error: Error): string {
  if (PROTOCOL_ERRORS.has(error.name)) return error.message;
  let description = descriptions.get(error);
  if (description === undefined) {
    const place = errorPlace(error);
    const head = error.name && error.name !== "Error" ? `${error.name}: ${error.message}` : error.message;
    description = place ? `${head} (${place.fn ? `in ${place.fn} ` : ""}at ${place.location})` : head;
    descriptions.set(error, description);
  }
  return description;
}

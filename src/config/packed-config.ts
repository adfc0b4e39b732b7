/**
 * The model config as an archive packs it: the user's YAML with the settings
 * that would read differently where the archive is served rewritten, its
 * comments and layout kept.
 */
import path from "node:path";
import type YAML from "yaml";
import { resolveModelPath } from "./model-config.ts";

/** Paths of the handler section that name folders (or, for gguf_file, a file) on the serving host. */
const PATH_KEYS = ["model_path", "tokenizer_path", "gguf_file"] as const;

/** The start-up budget a vLLM-engine config gets when it names none: vLLM loads, profiles and compiles for minutes. */
export const VLLM_STARTUP_TIMEOUT_S = 600;

/** The config text to pack (undefined: the file as it is) and a line per setting rewritten. */
interface PackedConfig {
  text: string | undefined;
  rewrites: string[];
}

/**
 * A relative `model_path`/`tokenizer_path` resolves against the config file's
 * folder, which inside the archive would be the unpacked model folder, so it
 * is rewritten to the absolute path it names here. Returns whether any was.
 */
function absolutizePaths(doc: YAML.Document, configFile: string, rewrites: string[]): boolean {
  let changed = false;
  for (const key of PATH_KEYS) {
    const value: unknown = doc.getIn(["handler", key]);
    if (typeof value !== "string" || value === "" || path.isAbsolute(value) || value === "~" || value.startsWith("~/")) continue;
    if (key === "gguf_file" && !value.includes("/")) continue; // a file name inside model_path
    const absolute = resolveModelPath(configFile, value);
    doc.setIn(["handler", key], absolute);
    rewrites.push(`handler.${key}: ${value} -> ${absolute} (relative paths resolve against ${path.basename(configFile)}'s folder)`);
    changed = true;
  }
  return changed;
}

/**
 * A vLLM-engine config without `startupTimeout` gets VLLM_STARTUP_TIMEOUT_S
 * (TorchServe's own default, 120 s, kills the worker while vLLM is still
 * starting, and says only "Worker died"). Returns whether it was set.
 */
function defaultStartupTimeout(doc: YAML.Document, rewrites: string[]): boolean {
  if (doc.getIn(["handler", "engine"]) !== "vllm" || doc.get("startupTimeout") !== undefined) return false;
  doc.set("startupTimeout", VLLM_STARTUP_TIMEOUT_S);
  rewrites.push(`startupTimeout: ${VLLM_STARTUP_TIMEOUT_S} (the vLLM engine starts in minutes; TorchServe's default is 120 s)`);
  return true;
}

/** Rewrites `doc` (read from `configFile`) in place for packing. */
export function packedConfig(doc: YAML.Document, configFile: string): PackedConfig {
  const rewrites: string[] = [];
  const defaulted = defaultStartupTimeout(doc, rewrites);
  const absolutized = absolutizePaths(doc, configFile, rewrites);
  return { text: defaulted || absolutized ? doc.toString() : undefined, rewrites };
}

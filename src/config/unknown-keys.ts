/**
 * Keys a model-config.yaml names that nothing reads: a typo (`quantise:`,
 * `system_promt:`, `maxWorker:`) would otherwise fall back to a default in
 * silence. The handler section is checked against the keys of the handler's
 * own schema (read from the schema's shape, so a new field is known as soon
 * as it is declared); the top level against TorchServe 0.12's model-config
 * keys (`ModelConfig.build` in its frontend).
 */
import type { z } from "zod";

/** The keys TorchServe 0.12's frontend reads from model-config.yaml, and the shim's `handler:` section. */
const TORCHSERVE_MODEL_CONFIG_KEYS: readonly string[] = [
  "minWorkers",
  "maxWorkers",
  "batchSize",
  "maxBatchDelay",
  "responseTimeout",
  "startupTimeout",
  "deviceType",
  "parallelType",
  "parallelLevel",
  "deviceIds",
  "torchrun",
  "maxRetryTimeoutInSec",
  "clientTimeoutInMills",
  "jobQueueSize",
  "useJobTicket",
  "sequenceMaxIdleMSec",
  "sequenceTimeoutMSec",
  "maxSequenceJobQueueSize",
  "maxNumSequence",
  "continuousBatching",
  "sequenceBatching",
  "asyncCommunication",
  "useVenv",
  "handler",
];

/** The keys TorchServe 0.12 reads under `torchrun:` (`ModelConfig.TorchRun.build`). */
const TORCHRUN_KEYS: readonly string[] = [
  "nnodes",
  "nproc-per-node",
  "rdzv-backend",
  "rdzv-endpoint",
  "rdzv-conf",
  "monitor-interval",
  "node-rank",
  "OMP_NUMBER_THREADS",
];

export interface UnknownKey {
  /** Dotted place in the YAML: `handler.system_promt`. */
  path: string;
  /** The closest known key, when one is close enough to be the intended one. */
  suggestion?: string;
  /** One line: where, what, and the suggestion. */
  message: string;
}

interface SchemaDef {
  type?: string;
  shape?: Record<string, unknown>;
  in?: unknown;
  innerType?: unknown;
  left?: unknown;
  right?: unknown;
  options?: unknown[];
  getter?: () => unknown;
}

function defOf(schema: unknown): SchemaDef | undefined {
  return (schema as { _zod?: { def?: SchemaDef } } | undefined)?._zod?.def;
}

/**
 * The object keys a zod schema declares, through pipes (`extendHandlerSection`'s
 * transform), optional/default wrappers, intersections and unions; undefined
 * when its shape cannot be known (a record, a custom type), so nothing is
 * reported as unknown against it.
 */
export function schemaKeys(schema: unknown, depth = 0): Set<string> | undefined {
  const def = defOf(schema);
  if (!def || depth > 20) return undefined;
  switch (def.type) {
    case "object":
      return new Set(Object.keys(def.shape ?? {}));
    case "pipe":
      return schemaKeys(def.in, depth + 1);
    case "optional":
    case "nullable":
    case "default":
    case "prefault":
    case "catch":
    case "readonly":
    case "nonoptional":
      return schemaKeys(def.innerType, depth + 1);
    case "lazy":
      return def.getter ? schemaKeys(def.getter(), depth + 1) : undefined;
    case "intersection":
      return unionOf([def.left, def.right], depth);
    case "union":
      return unionOf(def.options ?? [], depth);
    default:
      return undefined;
  }
}

function unionOf(parts: unknown[], depth: number): Set<string> | undefined {
  const keys = new Set<string>();
  for (const part of parts) {
    const own = schemaKeys(part, depth + 1);
    if (!own) return undefined;
    for (const key of own) keys.add(key);
  }
  return keys;
}

/** Edit distance with adjacent transpositions (optimal string alignment). */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = best;
    }
  }
  return rows[a.length]![b.length]!;
}

/** `max_workers`, `MaxWorkers` and `maxWorkers` are one key spelt three ways. */
function normalized(key: string): string {
  return key.toLowerCase().replace(/[-_]/g, "");
}

/** The known key `key` was most likely meant to be, or undefined when none is close. */
export function closestKey(key: string, known: Iterable<string>): string | undefined {
  let best: { key: string; distance: number } | undefined;
  const allowed = key.length <= 4 ? 1 : key.length <= 9 ? 2 : 3;
  for (const candidate of known) {
    const distance = normalized(candidate) === normalized(key) ? 0 : editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance <= allowed && (!best || distance < best.distance)) best = { key: candidate, distance };
  }
  return best?.key;
}

function unknownKeysOf(section: Record<string, unknown>, known: ReadonlySet<string>, prefix: string, what: string): UnknownKey[] {
  const found: UnknownKey[] = [];
  for (const key of Object.keys(section)) {
    if (known.has(key)) continue;
    const path = prefix ? `${prefix}.${key}` : key;
    const suggestion = closestKey(key, known);
    const hint = suggestion ? `; did you mean "${suggestion}"?` : "";
    found.push({ path, suggestion, message: `${path}: unknown key, not read by ${what}${hint}` });
  }
  return found;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * Every key of a parsed model-config.yaml that neither TorchServe 0.12 nor
 * the handler's schema knows. `handlerName` names the schema's owner in the
 * messages (`greeting-handler.ts's config schema`).
 */
export function unknownConfigKeys(
  raw: Record<string, unknown>,
  handlerSchema: z.ZodType<unknown> | unknown,
  handlerName: string,
): UnknownKey[] {
  const found = unknownKeysOf(raw, new Set(TORCHSERVE_MODEL_CONFIG_KEYS), "", "TorchServe 0.12's model config");
  if (isMapping(raw.torchrun))
    found.push(...unknownKeysOf(raw.torchrun, new Set(TORCHRUN_KEYS), "torchrun", "TorchServe 0.12's torchrun settings"));
  const handlerKeys = schemaKeys(handlerSchema);
  if (handlerKeys && isMapping(raw.handler)) {
    found.push(...unknownKeysOf(raw.handler, handlerKeys, "handler", `${handlerName}'s config schema`));
  }
  return found;
}

/**
 * MAR-INF/MANIFEST.json exactly as torch-model-archiver 0.12 writes it:
 * `json.dumps(manifest, indent=2)` of {createdOn, runtime, model, archiverVersion},
 * optional model keys left out when unset, non-ASCII escaped as Python does.
 */
import { z } from "zod";

/** The torch-model-archiver release whose manifests ours match. */
export const ARCHIVER_VERSION = "0.12.0";
export const MANIFEST_PATH = "MAR-INF/MANIFEST.json";
/** torch-model-archiver's model-name filter. */
export const MODEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_\-.]*$/;

export interface ManifestModel {
  modelName: string;
  serializedFile?: string;
  handler: string;
  modelFile?: string;
  modelVersion?: string;
  extensions?: string;
  requirementsFile?: string;
  configFile?: string;
}

export const Manifest = z.looseObject({
  createdOn: z.string().optional(),
  runtime: z.enum(["python", "python3", "LSP"]),
  model: z.looseObject({
    modelName: z.string().min(1),
    handler: z.string().min(1),
    modelVersion: z.string().optional(),
    serializedFile: z.string().optional(),
    modelFile: z.string().optional(),
    requirementsFile: z.string().optional(),
    configFile: z.string().optional(),
  }),
  archiverVersion: z.string().optional(),
});
export type Manifest = z.infer<typeof Manifest>;

const pad = (n: number): string => String(n).padStart(2, "0");

/** Python's `datetime.now().strftime("%d/%m/%Y %H:%M:%S")` (local time). */
export function formatCreatedOn(date: Date): string {
  return (
    `${pad(date.getDate())}/${pad(date.getMonth() + 1)}/${date.getFullYear()} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** `json.dumps(value, indent=2)`: same separators; ensure_ascii escapes all but " " to "~" as \uXXXX. */
export function pythonJsonDumps(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/[\u007f-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** The model keys in the archiver's order; unset (undefined or empty) keys are left out. */
function orderedModel(model: ManifestModel): Record<string, string> {
  const order: (keyof ManifestModel)[] = [
    "modelName",
    "serializedFile",
    "handler",
    "modelFile",
    "modelVersion",
    "extensions",
    "requirementsFile",
    "configFile",
  ];
  const out: Record<string, string> = {};
  for (const key of order) {
    const value = model[key];
    if (value) out[key] = value;
  }
  return out;
}

export function renderManifest(model: ManifestModel, createdOn: Date = new Date()): string {
  return pythonJsonDumps({
    createdOn: formatCreatedOn(createdOn),
    runtime: "python",
    model: orderedModel(model),
    archiverVersion: ARCHIVER_VERSION,
  });
}

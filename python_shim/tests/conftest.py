"""Shared fixtures: the tiny Llama model (built once per session) and an Engine over it."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
sys.path.insert(0, str(ROOT / "python_shim"))
# bundles.py's fixtures (echo_bundle), for every test that names one.
pytest_plugins = ["bundles"]

import torch  # noqa: E402

# On a small, busy CPU (2 cores, other processes) OpenMP's second thread makes the
# tiny model many times slower and its timing erratic; one thread is fastest.
torch.set_num_threads(1)


def load_script(name: str):
    """Import a scripts/*.py file (their names have dashes) as a module."""
    path = SCRIPTS / name
    spec = importlib.util.spec_from_file_location(name.replace("-", "_").removesuffix(".py"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A freshly written tiny model (TSSERVE_TINY_MODEL points at an existing one to save the build)."""
    given = os.environ.get("TSSERVE_TINY_MODEL")
    if given:
        return Path(given).resolve()
    out = tmp_path_factory.mktemp("tiny") / "tiny-llama"
    load_script("make-tiny-model.py").write_model(out)
    return out


@pytest.fixture(scope="session")
def engine(tiny_model_dir):
    from tsserve_shim.engine.transformers.engine import Engine
    from tsserve_shim.model.handler_config import HandlerConfig

    config = HandlerConfig.from_section({"model_path": str(tiny_model_dir)})
    return Engine.load(config, model_dir=str(tiny_model_dir), gpu_id=None, device_type=None, device_ids=None)


# A nested JSON Schema both engines' structured-output tests constrain to (transformers/test_grammar.py, vllm/test_vllm_structured.py).
NESTED_SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"enum": ["A", "B", "C", "D"]},
        "confidence": {"type": "integer", "minimum": 0, "maximum": 100},
        "reasons": {"type": "array", "items": {"type": "string", "maxLength": 40}, "minItems": 1, "maxItems": 2},
        "topic": {
            "type": "object",
            "properties": {"name": {"type": "string", "maxLength": 20}},
            "required": ["name"],
            "additionalProperties": False,
        },
    },
    "required": ["answer", "confidence", "reasons", "topic"],
    "additionalProperties": False,
}


SMOLLM2 = ROOT / ".cache" / "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def smollm2_engine():
    """SmolLM2-135M-Instruct (scripts/setup.sh converts it) with prefix caching off: the reference."""
    from tsserve_shim.engine.transformers.engine import Engine
    from tsserve_shim.model.handler_config import HandlerConfig

    if not (SMOLLM2 / "config.json").is_file():
        pytest.fail(f"{SMOLLM2} is missing: scripts/setup.sh converts SmolLM2-135M-Instruct there")
    return Engine.load(HandlerConfig.from_section({"model_path": str(SMOLLM2), "prefix_cache_mb": 0}), model_dir=str(SMOLLM2), gpu_id=None)


# One OpenMP thread, as the e2e suites' vLLM model has (and this process's torch, above): pytest runs beside
# npm test's two other lanes on two cores.
VLLM_SECTION = {
    "model_path": str(SMOLLM2),
    "engine": "vllm",
    "enforce_eager": True,
    "kv_cache_mb": 256,
    "max_model_len": 2048,
    "cpu_threads": 1,
}


@pytest.fixture(scope="session")
def vllm_engine():
    """SmolLM2-135M-Instruct on vLLM (eager: about a third of the compiled start-up), loaded once for every suite."""
    from tsserve_shim.engine.registry import load_engine
    from tsserve_shim.model.handler_config import HandlerConfig

    if not (SMOLLM2 / "config.json").is_file():
        pytest.fail(f"{SMOLLM2} is missing: scripts/setup.sh converts SmolLM2-135M-Instruct there")
    from tsserve_shim.worker.reaper import Reaper

    reaper = Reaper.start()  # as the worker does: no vLLM process outlives the test run
    try:
        with reaper.watching_new_children():
            engine = load_engine(HandlerConfig.from_section(VLLM_SECTION), model_dir=str(SMOLLM2), gpu_id=None)
        yield engine
        engine.shutdown()
    finally:
        reaper.close()


@pytest.fixture(scope="session", params=["transformers", "vllm"])
def serving_engine(request):
    """The engine contract's subject: SmolLM2 on each engine (the same model, so their answers compare)."""
    return request.getfixturevalue("smollm2_engine" if request.param == "transformers" else "vllm_engine")

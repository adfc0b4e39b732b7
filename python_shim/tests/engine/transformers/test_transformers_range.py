"""The transformers versions the engine accepts, the KV cache keyword it passes, and its parity with
``generate`` on the oldest and newest transformers of its tested range (each installed by
scripts/setup.sh into .cache/transformers-range/<version>, run here in a pytest of its own)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT

from tsserve_shim.engine.transformers.transformers_compat import (
    NEWEST_TESTED,
    OLDEST_TESTED,
    UnsupportedTransformersError,
    cache_keyword,
    check_transformers_version,
)

RANGE_FILE = ROOT / "python_shim" / "transformers-range.txt"
RANGE_DIR = ROOT / ".cache" / "transformers-range"


def range_versions() -> list[str]:
    lines = [line.split()[0] for line in RANGE_FILE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return lines


@pytest.mark.parametrize("version", ["5.16.1", "4.57.6", "5.25.0", "6.0.0"])
def test_a_transformers_outside_the_range_is_refused_naming_both(version):
    with pytest.raises(UnsupportedTransformersError) as refused:
        check_transformers_version(version)
    assert version in str(refused.value) and "5.17 to 5.24" in str(refused.value)


@pytest.mark.parametrize("version", ["5.17.0", "5.19.0", "5.24.0", "5.24.1", "5.20.0.dev0"])
def test_a_transformers_inside_the_range_is_accepted(version):
    assert check_transformers_version(version) == version


def test_the_range_file_names_the_oldest_and_newest_tested():
    versions = range_versions()
    assert tuple(int(p) for p in versions[0].split(".")[:2]) == OLDEST_TESTED
    assert tuple(int(p) for p in versions[-1].split(".")[:2]) == NEWEST_TESTED


class Renamed:
    def forward(self, input_ids=None, cache=None, **kwargs): ...


class Older:
    def forward(self, input_ids=None, past_key_values=None, **kwargs): ...


class Wrapper:
    def forward(self, *args, **kwargs): ...


class NoCache:
    def forward(self, input_ids=None): ...


def test_the_cache_keyword_is_the_one_forward_takes():
    import transformers

    assert cache_keyword(Renamed()) == "cache"
    assert cache_keyword(Older()) == "past_key_values"
    assert cache_keyword(Wrapper()) == ("cache" if transformers.__version__ >= "5.24" else "past_key_values")
    with pytest.raises(UnsupportedTransformersError, match=r"NoCache\.forward takes no KV cache argument"):
        cache_keyword(NoCache())


def test_the_loaded_model_takes_the_keyword_the_engine_passes(engine):
    import inspect

    assert cache_keyword(engine.runner.model) in inspect.signature(type(engine.runner.model).forward).parameters


@pytest.mark.parametrize("version", range_versions())
def test_greedy_parity_with_generate_on(version):
    folder = RANGE_DIR / version
    if not (folder / "transformers").is_dir():
        pytest.fail(f"{folder} is missing: scripts/setup.sh installs transformers {version} there")
    env = dict(os.environ, PYTHONPATH=str(folder), TSSERVE_EXPECT_TRANSFORMERS=version)
    # SmolLM2's prompt-by-prompt test is left to the venv's own run (8 s): its batch and joining tests compare the same prompts.
    selection = "expected or tiny or batch or joining"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            selection,
            str(ROOT / "python_shim/tests/engine/transformers/test_generate_parity.py"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"transformers {version}:\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-2000:]


def test_loading_the_engine_on_a_transformers_outside_the_range_is_refused(monkeypatch, tiny_model_dir):
    import transformers

    from tsserve_shim.engine.transformers.engine import Engine
    from tsserve_shim.model.handler_config import HandlerConfig

    monkeypatch.setattr(transformers, "__version__", "5.25.0")
    with pytest.raises(
        UnsupportedTransformersError, match=r"tested on transformers 5\.17 to 5\.24, and this Python has transformers 5\.25\.0"
    ):
        Engine.load(HandlerConfig.from_section({"model_path": str(tiny_model_dir)}), model_dir=str(tiny_model_dir))

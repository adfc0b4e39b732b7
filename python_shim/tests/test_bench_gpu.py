"""scripts/bench-gpu.py --smoke runs every phase on a CPU and writes each phase's JSON, with the
engine's tokens equal to generate's in the correctness phase."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

TOKENIZER = ROOT / "node_modules" / "@lenml" / "tokenizer-llama2" / "models"


def test_bench_gpu_smoke_writes_every_phase(tmp_path):
    cmd = [sys.executable, str(ROOT / "scripts" / "bench-gpu.py"), "--smoke", "--out", str(tmp_path), "--tokenizer", str(TOKENIZER)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    report = json.loads((tmp_path / "bench-gpu.json").read_text())
    assert list(report["phases"]) == ["versions", "correctness", "speed"]
    for phase, result in report["phases"].items():
        assert json.loads((tmp_path / f"{phase}.json").read_text()) == result
        assert result["ok"], (phase, result)
    versions = report["phases"]["versions"]
    assert versions["transformers_accepted"] and versions["torch"]
    [checked] = report["phases"]["correctness"]["results"]
    for part in ("alone_vs_generate", "staggered_vs_generate", "prefix_cache"):
        assert checked[part]["equal_prompts"] == checked[part]["prompts"] == 8
    assert checked["prefix_cache"]["cached_tokens"] > 0
    speed = report["phases"]["speed"]
    assert speed["clients_engine"]["tokens"] == 16 * speed["new_tokens"] and speed["batch1_engine_tokens_per_s"] > 0
    assert 0 < speed["batch1_forward_share"] <= 1 and speed["clients_engine"]["ttft_median_s"] > 0


def test_bench_gpu_writes_a_phase_before_the_next_one_fails(tmp_path):
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "bench-gpu.py"),
        "--smoke",
        "--out",
        str(tmp_path),
        "--tokenizer",
        str(TOKENIZER),
        "--phases",
        "versions,speed",
        "--clients",
        "0",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1  # no clients: the speed phase fails
    assert json.loads((tmp_path / "versions.json").read_text())["ok"]
    speed = json.loads((tmp_path / "speed.json").read_text())
    assert not speed["ok"] and "--clients 0" in speed["error"]

"""scripts/bench-gpu.py --tiny runs to completion on CPU and writes its JSON and markdown."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def test_bench_gpu_tiny_smoke(tmp_path):
    cmd = [
        sys.executable, str(ROOT / "scripts" / "bench-gpu.py"), "--tiny", "--out", str(tmp_path),
        "--new-tokens", "4", "--prompt-tokens", "12", "--repeats", "1", "--batch", "1,2", "--modes", "fp32,nf4",
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    report = json.loads((tmp_path / "bench-gpu.json").read_text())
    rows = report["results"]
    assert {(r["batch"], r["method"]) for r in rows} == {(b, m) for b in (1, 2) for m in ("plain", "engine", "seed")}
    for r in rows:
        assert r["generated_tokens"] == 4 * r["batch"] and r["tokens_per_s"] > 0
    table = (tmp_path / "bench-gpu.md").read_text()
    assert "| tiny | fp32 | 2 | engine |" in table
    # nf4 through bitsandbytes' CPU kernels: measured, and smaller than float32.
    footprint = {r["mode"]: r["footprint_mib"] for r in rows}
    assert {r["mode"] for r in rows} == {"fp32", "nf4"} and footprint["nf4"] < footprint["fp32"]
    assert "| tiny | nf4 | 1 | engine |" in table

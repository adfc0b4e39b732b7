"""A/B comparison of the RPC round trip, interleaved (A B A B ...) so that
machine noise hits both variants alike; prints the median of each figure.

A variant is a bundle (Node side) and an optional folder that holds a
`tsserve_shim` package (Python side; default: the installed one):

    .venv/bin/python bench/rpc_ab.py --rounds 5 --seconds 1 \
        --a /tmp/before/echo/handler.mjs:/tmp/before \
        --b /tmp/after/echo/handler.mjs

Used to record the before/after figures in bench/OPTIMISATIONS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run_once(variant: str, seconds: float, max_rounds: int, sizes: str) -> dict:
    bundle, _, shim_dir = variant.partition(":")
    env = dict(os.environ)
    if shim_dir:
        env["PYTHONPATH"] = shim_dir + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    out = subprocess.run(
        [
            sys.executable,
            os.path.join(HERE, "rpc_bench.py"),
            "--bundle",
            bundle,
            "--seconds",
            str(seconds),
            "--max-rounds",
            str(max_rounds),
            "--sizes",
            sizes,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--a", required=True, help="BUNDLE[:SHIM_DIR]")
    parser.add_argument("--b", required=True, help="BUNDLE[:SHIM_DIR]")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--max-rounds", type=int, default=20_000)
    parser.add_argument("--sizes", default="100B,1KB,100KB,1MB")
    args = parser.parse_args()
    runs: dict = {"a": [], "b": []}
    for _ in range(args.rounds):
        for name in ("a", "b"):
            runs[name].append(run_once(getattr(args, name), args.seconds, args.max_rounds, args.sizes))
    summary = {}
    for name, results in runs.items():
        summary[name] = {
            size: {key: round(statistics.median(r[size][key] for r in results), 1) for key in ("p50_us", "p99_us", "per_s", "cpu_us")}
            for size in results[0]
        }
    for size in summary["a"]:
        print(f"{size:>6}  A {json.dumps(summary['a'][size])}\n        B {json.dumps(summary['b'][size])}")


if __name__ == "__main__":
    main()

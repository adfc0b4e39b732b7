"""What the LLM metrics cost the transformers engine's tokens/s (issue 36 allows 1 %), in one process.

The same engine serves the same calls with its metrics on and off, in interleaved rounds (on, off, then
off, on: a drift of the machine's speed hits both alike). On is what a worker does: the engine records into
EngineStats in its decode loop, every call's outcomes are counted (worker/metrics.py's report_generated, as
the bridge calls it) and a MetricsPublisher publishes once a second through TorchServe's own metrics cache,
loaded with tsserve's generated metrics config (its [METRICS] lines go to a log handler that drops them, as a
worker's stdout would carry them). Off swaps in stats that keep nothing and publishes nothing.

Times are CPU seconds of the whole process (`--clock cpu`, the default, with one torch thread): the
publisher's thread is counted, other processes on a shared machine are not. The figure is the median over
rounds of one minus tokens/s on divided by tokens/s off. On a shared machine its rounds vary by several per
cent, so the script also times the metrics' own code where it runs (TimedStats: every record in the decode
loop, counting each call's outcomes, the last publication) and reports it as a share of the run's wall time,
a figure the machine's noise does not drown.

    .venv/bin/python bench/metrics_cost.py [--model DIR] [--calls 8] [--batch 8] [--tokens 32] [--rounds 9] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python_shim"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from engine_bench import GREEDY, PROMPTS, clocks, default_model, engine_request, since  # noqa: E402

from tsserve_shim.engine.common.stats import EngineStats, Snapshot  # noqa: E402
from tsserve_shim.engine.transformers.engine import Engine  # noqa: E402
from tsserve_shim.model.handler_config import HandlerConfig  # noqa: E402
from tsserve_shim.worker.metrics import MetricsPublisher, report_generated  # noqa: E402


class NoStats(EngineStats):
    """Metrics off: every record is dropped."""

    def observe(self, name: str, *values: float) -> None:
        pass

    def count(self, name: str, amount: float = 1, *labels: str) -> None:
        pass

    def set(self, name: str, value: float) -> None:
        pass

    def snapshot(self) -> Snapshot:
        return Snapshot({}, {}, {})


class TimedStats(EngineStats):
    """Metrics on, with the time spent recording added up (the timer's own cost included: an upper bound)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds = 0.0

    def _timed(self, work, *args):
        started = time.perf_counter()
        try:
            return work(*args)
        finally:
            self.seconds += time.perf_counter() - started

    def observe(self, name: str, *values: float) -> None:
        self._timed(super().observe, name, *values)

    def count(self, name: str, amount: float = 1, *labels: str) -> None:
        self._timed(super().count, name, amount, *labels)

    def set(self, name: str, value: float) -> None:
        self._timed(super().set, name, value)


def torchserve_cache():
    from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

    cache = MetricsCacheYamlImpl(config_file_path=os.path.join(ROOT, "configs", "torchserve", "metrics.yaml"))
    cache.initialize_cache()
    return cache


def serve(engine: Engine, calls: int, batch: int, tokens: int, stats: EngineStats) -> tuple[tuple[float, float], int, float]:
    """CPU and wall seconds to serve ``calls`` generate calls of ``batch`` prompts with ``stats`` (NoStats: metrics
    off), the tokens made, and the wall seconds spent in the metrics' own code (TimedStats only)."""
    metrics_on = not isinstance(stats, NoStats)
    engine.core.stats = stats
    publisher = MetricsPublisher(stats, torchserve_cache(), "bench").start() if metrics_on else None
    made, spent = 0, 0.0
    started = clocks()
    for call in range(calls):
        requests = [engine_request(PROMPTS[i % len(PROMPTS)], tokens, GREEDY, seed=call) for i in range(batch)]
        outcomes = engine.generate(requests)
        if metrics_on:
            counted = time.perf_counter()
            report_generated(stats, "bench", outcomes, ["main"] * len(outcomes))
            spent += time.perf_counter() - counted
        made += sum(len(o["sequences"][0]["logprobs"]["token_ids"]) for o in outcomes)
    if publisher is not None:
        published = time.perf_counter()
        publisher.stop()  # its last publication is part of the cost (the thread's earlier ones are not timed)
        spent += time.perf_counter() - published
    if isinstance(stats, TimedStats):
        spent += stats.seconds
    return since(started), made, spent


def measure(engine: Engine, args) -> dict:
    rates: dict[str, list[float]] = {"on": [], "off": []}
    shares: list[float] = []
    clock = 0 if args.clock == "cpu" else 1
    for r in range(args.rounds):
        order = ["on", "off"] if r % 2 == 0 else ["off", "on"]
        for mode in order:
            elapsed, made, _ = serve(engine, args.calls, args.batch, args.tokens, EngineStats() if mode == "on" else NoStats())
            rates[mode].append(made / elapsed[clock])
        elapsed, _, spent = serve(engine, args.calls, args.batch, args.tokens, TimedStats())
        shares.append(spent / elapsed[1])
    ratios = [on / off for on, off in zip(rates["on"], rates["off"])]
    return {
        "tokens_per_s_on": round(statistics.median(rates["on"]), 1),
        "tokens_per_s_off": round(statistics.median(rates["off"]), 1),
        "cost_percent": round((1 - statistics.median(ratios)) * 100, 2),
        "per_round_cost_percent": [round((1 - ratio) * 100, 2) for ratio in ratios],
        # The metrics' own code timed where it runs: recording in the decode loop, counting each call's outcomes and
        # the last publication, as a share of the run's wall time (the publisher thread's once-a-second work aside).
        "metrics_code_percent_of_wall": round(statistics.median(shares) * 100, 3),
        "per_round_metrics_code_percent": [round(share * 100, 3) for share in shares],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    parser.add_argument("--out")
    args = parser.parse_args()
    logging.getLogger().addHandler(logging.NullHandler())  # the [METRICS] lines: made, then dropped
    logging.getLogger().setLevel(logging.INFO)
    torch.set_num_threads(args.threads)
    section = {"model_path": os.path.abspath(args.model), "dtype": "float32", "prefix_cache_mb": 0}
    engine = Engine.load(HandlerConfig.from_section(section), model_dir=section["model_path"]).start()
    engine.eos_ids = set()  # equal work: no row ends early
    try:
        serve(engine, 2, args.batch, args.tokens, EngineStats())  # warm-up
        result = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
            "model": os.path.basename(os.path.normpath(args.model)),
            "calls_per_round": args.calls,
            "batch": args.batch,
            "tokens": args.tokens,
            "rounds": args.rounds,
            "clock": args.clock,
            **measure(engine, args),
        }
    finally:
        engine.shutdown()
    text = json.dumps(result, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

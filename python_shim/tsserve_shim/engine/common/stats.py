"""What an engine measures while it serves: the LLM metrics of src/metrics/llm-metrics.ts (read here from
llm-metrics.json), kept in memory. Engines record into it from their own threads; the worker publishes
snapshots of it to TorchServe (worker/metrics.py). Recording is a dictionary update under a lock: it never
fails a request."""

from __future__ import annotations

import bisect
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..contract import DEFAULT_STAGE

MANIFEST = json.loads((Path(__file__).resolve().parents[2] / "llm-metrics.json").read_text())
DEFINITIONS = {metric["name"]: metric for metric in MANIFEST["metrics"]}

TIME_TO_FIRST_TOKEN = "tsserve_time_to_first_token_seconds"
INTER_TOKEN_LATENCY = "tsserve_inter_token_latency_seconds"
E2E_REQUEST_LATENCY = "tsserve_e2e_request_latency_seconds"
REQUEST_QUEUE_TIME = "tsserve_request_queue_time_seconds"
REQUESTS_RUNNING = "tsserve_num_requests_running"
REQUESTS_WAITING = "tsserve_num_requests_waiting"
KV_CACHE_USAGE = "tsserve_kv_cache_usage_perc"
PREFIX_CACHE_QUERIES = "tsserve_prefix_cache_queries_total"
PREFIX_CACHE_HITS = "tsserve_prefix_cache_hits_total"
PROMPT_TOKENS = "tsserve_prompt_tokens_total"
GENERATION_TOKENS = "tsserve_generation_tokens_total"
REQUEST_SUCCESS = "tsserve_request_success_total"
REQUEST_FAILURE = "tsserve_request_failure_total"


def metrics_enabled(environ=os.environ) -> bool:
    """False where the worker's environment has TSSERVE_LLM_METRICS=off (or 0, false, no): nothing is published,
    and vLLM runs without its statistics (what the metrics' cost is measured against)."""
    return environ.get("TSSERVE_LLM_METRICS", "on").strip().lower() not in ("off", "0", "false", "no")


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)  # per bucket, not cumulative; the last is above every bound
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = self.counts or [0] * (len(self.buckets) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, observations at or below it) for each bound and +Inf, as Prometheus reads a histogram."""
        running, out = 0, []
        for bound, n in zip([*map(_le, self.buckets), "+Inf"], self.counts):
            running += n
            out.append((bound, running))
        return out

    def copy(self) -> Histogram:
        return Histogram(self.buckets, list(self.counts), self.total, self.count)


def _le(bound: float) -> str:
    return repr(float(bound))


@dataclass
class Snapshot:
    histograms: dict[str, Histogram]
    counters: dict[tuple[str, tuple[str, ...]], float]  # (name, label values besides model_name) -> total
    gauges: dict[str, float]


class EngineStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._histograms = {name: Histogram(tuple(m["buckets"])) for name, m in DEFINITIONS.items() if m["kind"] == "histogram"}
        self._counters: dict[tuple[str, tuple[str, ...]], float] = {}
        self._gauges: dict[str, float] = {}

    def observe(self, name: str, *values: float) -> None:
        histogram = self._histograms[name]
        with self._lock:
            for value in values:
                histogram.observe(max(0.0, float(value)))

    def count(self, name: str, amount: float = 1, *labels: str) -> None:
        if amount <= 0:
            return
        key = (name, tuple(str(label) for label in labels))
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + amount

    def set(self, name: str, value: float) -> None:
        with self._lock:
            self._gauges[name] = float(value)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot({n: h.copy() for n, h in self._histograms.items()}, dict(self._counters), dict(self._gauges))


def count_outcomes(stats: EngineStats, outcomes, stages: list[str] | None = None) -> tuple[int, int]:
    """Tokens, prefix-cache lookups, finished sequences by reason and failures by status, from a call's outcomes
    (the same on every engine: what the worker answers), each labelled by its request's stage (``stages``, in
    the outcomes' order). Returns its prompt tokens and those found cached."""
    prompts = cached_total = 0
    for index, outcome in enumerate(outcomes):
        stage = stages[index] if stages and index < len(stages) else DEFAULT_STAGE
        if not outcome.get("ok"):
            stats.count(REQUEST_FAILURE, 1, str(outcome.get("status", 500)), stage)
            continue
        prompt, cached = int(outcome.get("prompt_tokens", 0)), int(outcome.get("cached_tokens", 0))
        stats.count(PROMPT_TOKENS, prompt, stage)
        stats.count(PREFIX_CACHE_QUERIES, prompt, stage)
        stats.count(PREFIX_CACHE_HITS, cached, stage)
        prompts, cached_total = prompts + prompt, cached_total + cached
        for sequence in outcome.get("sequences", []):
            stats.count(GENERATION_TOKENS, generated_tokens(sequence), stage)
            stats.count(REQUEST_SUCCESS, 1, str(sequence.get("finish_reason", "length")), stage)
    return prompts, cached_total


def generated_tokens(sequence: dict) -> int:
    """What a sequence cost in generated tokens, its EOS or stop token included (vLLM's count)."""
    return int(sequence.get("generated_tokens", len(sequence.get("logprobs", {}).get("token_ids", []))))

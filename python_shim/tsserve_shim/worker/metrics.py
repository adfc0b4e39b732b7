"""The engine's LLM metrics (engine/common/stats.py) published to TorchServe, once a second.

TorchServe's Python worker prints each metric update to its stdout; the frontend reads it and, in
``metrics_mode: prometheus`` (what tsserve's config.properties sets), adds it to the metrics API: a
counter update is added to the frontend's total (so several workers of a model add up, and a restarted
worker's totals are kept), a gauge update replaces the value for its labels. So the publisher sends
counters as the increase since its last publication and gauges (labelled by worker) as they are, and
only what changed: an idle model costs nothing. A metrics backend that refuses is logged once; it never
fails or slows a request (the engine records under a lock, this thread publishes).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from ..engine.common.stats import MANIFEST, EngineStats, Snapshot, count_outcomes, metrics_enabled

logger = logging.getLogger(__name__)

PUBLISHED = {metric["name"]: metric for metric in MANIFEST["published"]}
INTERVAL_S = 1.0

# (published name, label values in the published order, value)
Update = tuple[str, list[str], float]


def updates(previous: Snapshot | None, now: Snapshot, model_name: str, worker: str) -> list[Update]:
    """What changed from ``previous`` to ``now``, as TorchServe metric updates."""
    out: list[Update] = []
    for name, histogram in now.histograms.items():
        before = previous.histograms.get(name) if previous else None
        if histogram.count == (before.count if before else 0):
            continue
        old = dict(before.cumulative()) if before and before.count else None
        for le, total in histogram.cumulative():
            # The first time every bucket is sent, so that each series exists; then only those that grew.
            if old is None or total > old[le]:
                out.append((f"{name}_bucket", [model_name, le], total - (old[le] if old else 0)))
        out.append((f"{name}_sum", [model_name], histogram.total - (before.total if before else 0.0)))
        out.append((f"{name}_count", [model_name], histogram.count - (before.count if before else 0)))
    for (name, labels), total in now.counters.items():
        delta = total - (previous.counters.get((name, labels), 0) if previous else 0)
        if delta > 0:
            out.append((name, [model_name, *labels], delta))
    for name, value in now.gauges.items():
        if previous is None or previous.gauges.get(name) != value:
            out.append((name, [model_name, worker], value))
    return out


class MetricsPublisher:
    """Publishes ``stats`` through TorchServe's metrics cache (``context.metrics``) from a thread of its own."""

    def __init__(
        self, stats: EngineStats, metrics_cache: Any, model_name: str, worker: str | None = None, interval_s: float = INTERVAL_S
    ) -> None:
        self.stats = stats
        self.model_name = model_name
        self.worker = worker or str(os.getpid())
        self.interval_s = interval_s
        self._cache = metrics_cache
        self._metrics: dict[str, Any] = {}
        self._last: Snapshot | None = None
        self._refused = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> MetricsPublisher:
        self._thread = threading.Thread(target=self._run, name="tsserve-metrics", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.publish()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.publish()

    def publish(self) -> None:
        now = self.stats.snapshot()
        for name, labels, value in updates(self._last, now, self.model_name, self.worker):
            self._send(name, labels, value)
        self._last = now

    def _send(self, name: str, labels: list[str], value: float) -> None:
        try:
            self._metric(name).add_or_update(value, labels)
        except Exception:
            if not self._refused:
                self._refused = True
                logger.exception("tsserve: TorchServe refused the metric %s (later refusals are not logged)", name)

    def _metric(self, name: str) -> Any:
        metric = self._metrics.get(name)
        if metric is None:
            from ts.metrics.metric_type_enum import MetricTypes

            spec = PUBLISHED[name]
            kind = MetricTypes.GAUGE if spec["type"] == "gauge" else MetricTypes.COUNTER
            try:
                metric = self._cache.get_metric(name, kind)  # declared by the metrics config
            except Exception:
                metric = self._cache.add_metric_to_cache(name, spec["unit"], list(spec["dimensions"]), kind)
            self._metrics[name] = metric
        return metric


def report_generated(stats: EngineStats, model_name: str, outcomes: list, stages: list[str] | None = None) -> None:
    """A generate call's outcomes (labelled by their requests' ``stages``) into the metrics, and its prefix-cache
    hits into the worker's log."""
    try:
        prompt, cached = count_outcomes(stats, outcomes, stages)
    except Exception:
        logger.exception("tsserve: counting a generate call's outcomes failed")
        return
    if prompt:
        logger.info("tsserve: %s: prefix cache hit %d of %d prompt tokens (%.0f%%)", model_name, cached, prompt, 100.0 * cached / prompt)


def start_publishing(engine: Any, context: Any, model_name: str) -> MetricsPublisher | None:
    """Publish ``engine.stats`` through ``context.metrics`` (None where the worker has no metrics cache, or
    TSSERVE_LLM_METRICS=off)."""
    cache = getattr(context, "metrics", None)
    stats = getattr(engine, "stats", None)
    if cache is None or stats is None or not metrics_enabled():
        return None
    return MetricsPublisher(stats, cache, model_name).start()

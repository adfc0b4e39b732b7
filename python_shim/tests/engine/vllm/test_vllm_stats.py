"""The vLLM engine's metrics: tsserve's names and buckets are vLLM's own (the installed vLLM is the reference),
and vLLM's per-step statistics land in the engine's EngineStats."""

from __future__ import annotations

import inspect

import pytest

from tsserve_shim.engine.common.stats import DEFINITIONS, EngineStats
from tsserve_shim.engine.vllm.stats import record_step

vllm_buckets = pytest.importorskip("vllm.v1.metrics.buckets")


def test_the_histograms_use_vllm_s_buckets():
    assert DEFINITIONS["tsserve_time_to_first_token_seconds"]["buckets"] == list(vllm_buckets.TIME_TO_FIRST_TOKEN_BUCKETS)
    assert DEFINITIONS["tsserve_inter_token_latency_seconds"]["buckets"] == list(vllm_buckets.INTER_TOKEN_LATENCY_BUCKETS)
    assert DEFINITIONS["tsserve_e2e_request_latency_seconds"]["buckets"] == list(vllm_buckets.REQUEST_LATENCY_BUCKETS)
    assert DEFINITIONS["tsserve_request_queue_time_seconds"]["buckets"] == list(vllm_buckets.REQUEST_LATENCY_BUCKETS)


def test_every_name_but_the_failures_is_vllm_s_under_the_prefix():
    from vllm.v1.metrics import loggers

    source = inspect.getsource(loggers)
    for name in DEFINITIONS:
        if name == "tsserve_request_failure_total":
            continue  # vLLM has no such counter: tsserve's refusals and failures by HTTP status
        vllm_name = "vllm:" + name.removeprefix("tsserve_").removesuffix("_total")
        assert f'"{vllm_name}"' in source, vllm_name


def test_a_step_s_statistics_are_recorded():
    from vllm.v1.metrics.stats import FinishedRequestStats, IterationStats, SchedulerStats

    scheduler = SchedulerStats(num_running_reqs=3, num_waiting_reqs=2, kv_cache_usage=0.25)
    iteration = IterationStats()
    iteration.time_to_first_tokens_iter = [0.05, 0.2]
    iteration.inter_token_latencies_iter = [0.01, 0.02, 0.03]
    iteration.finished_requests = [FinishedRequestStats(finish_reason=None, e2e_latency=1.2, queued_time=0.4)]
    stats = EngineStats()
    record_step(stats, scheduler, iteration)
    now = stats.snapshot()
    assert now.gauges == {"tsserve_num_requests_running": 3, "tsserve_num_requests_waiting": 2, "tsserve_kv_cache_usage_perc": 0.25}
    assert now.histograms["tsserve_time_to_first_token_seconds"].count == 2
    assert now.histograms["tsserve_inter_token_latency_seconds"].total == pytest.approx(0.06)
    assert now.histograms["tsserve_e2e_request_latency_seconds"].total == pytest.approx(1.2)
    assert now.histograms["tsserve_request_queue_time_seconds"].total == pytest.approx(0.4)

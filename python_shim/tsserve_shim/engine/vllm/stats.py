"""vLLM's own per-step statistics into the engine's EngineStats: a stat logger (vLLM's StatLoggerBase) that
AsyncLLM calls after each engine step with its scheduler's load and the step's token timings."""

from __future__ import annotations

from ..common.stats import (
    E2E_REQUEST_LATENCY,
    INTER_TOKEN_LATENCY,
    KV_CACHE_USAGE,
    REQUEST_QUEUE_TIME,
    REQUESTS_RUNNING,
    REQUESTS_WAITING,
    TIME_TO_FIRST_TOKEN,
    EngineStats,
)


def stat_logger_factory(stats: EngineStats):
    """What AsyncLLM's ``stat_loggers`` takes: a factory of a per-engine logger recording into ``stats``."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class Recorder(StatLoggerBase):
        def __init__(self, vllm_config, engine_index: int = 0) -> None:
            pass

        def record(self, scheduler_stats, iteration_stats, mm_cache_stats=None, engine_idx: int = 0) -> None:
            record_step(stats, scheduler_stats, iteration_stats)

        def log_engine_initialized(self) -> None:
            pass

    return Recorder


def record_step(stats: EngineStats, scheduler_stats, iteration_stats) -> None:
    if scheduler_stats is not None:
        stats.set(REQUESTS_RUNNING, scheduler_stats.num_running_reqs)
        stats.set(REQUESTS_WAITING, scheduler_stats.num_waiting_reqs)
        stats.set(KV_CACHE_USAGE, scheduler_stats.kv_cache_usage)
    if iteration_stats is not None:
        stats.observe(TIME_TO_FIRST_TOKEN, *iteration_stats.time_to_first_tokens_iter)
        stats.observe(INTER_TOKEN_LATENCY, *iteration_stats.inter_token_latencies_iter)
        for finished in iteration_stats.finished_requests:
            stats.observe(E2E_REQUEST_LATENCY, finished.e2e_latency)
            stats.observe(REQUEST_QUEUE_TIME, finished.queued_time)

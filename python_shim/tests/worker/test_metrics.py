"""The LLM metrics published to TorchServe (worker/metrics.py): what changed, as TorchServe's metric lines,
through TorchServe's own metrics cache loaded with tsserve's generated metrics config."""

from __future__ import annotations

import logging

import pytest
from conftest import ROOT
from protocol_values import make_request

from tsserve_shim.bridge.model_calls import request_stages
from tsserve_shim.engine.common.stats import (
    PREFIX_CACHE_HITS,
    PROMPT_TOKENS,
    REQUEST_FAILURE,
    REQUEST_SUCCESS,
    REQUESTS_RUNNING,
    TIME_TO_FIRST_TOKEN,
    EngineStats,
    count_outcomes,
)
from tsserve_shim.worker.metrics import MetricsPublisher, updates


def test_the_first_publication_sends_every_bucket_then_only_what_grew():
    stats = EngineStats()
    stats.observe(TIME_TO_FIRST_TOKEN, 0.03, 3000)
    first = stats.snapshot()
    sent = updates(None, first, "m", "7")
    buckets = {labels[1]: value for name, labels, value in sent if name.endswith("_bucket")}
    assert len(buckets) == 23 and buckets["0.02"] == 0 and buckets["0.04"] == 1 and buckets["2560.0"] == 1 and buckets["+Inf"] == 2
    assert ("tsserve_time_to_first_token_seconds_count", ["m"], 2) in sent
    assert not any("inter_token" in name for name, _, _ in sent)  # nothing observed: nothing sent
    stats.observe(TIME_TO_FIRST_TOKEN, 0.5)
    later = updates(first, stats.snapshot(), "m", "7")
    assert {labels[1] for name, labels, _ in later if name.endswith("_bucket")} == {
        "0.5",
        "0.75",
        "1.0",
        "2.5",
        "5.0",
        "7.5",
        "10.0",
        "20.0",
        "40.0",
        "80.0",
        "160.0",
        "640.0",
        "2560.0",
        "+Inf",
    }
    assert updates(stats.snapshot(), stats.snapshot(), "m", "7") == []


def test_counters_go_as_increases_and_gauges_as_values_labelled_by_worker():
    stats = EngineStats()
    count_outcomes(
        stats,
        [
            {
                "ok": True,
                "prompt_tokens": 10,
                "cached_tokens": 4,
                "sequences": [{"finish_reason": "stop", "logprobs": {"token_ids": [1, 2, 3]}}],
            },
            {"ok": False, "status": 400, "message": "x"},
        ],
    )
    stats.set(REQUESTS_RUNNING, 3)
    first = stats.snapshot()
    sent = updates(None, first, "m", "7")
    assert (PROMPT_TOKENS, ["m", "main"], 10) in sent and (PREFIX_CACHE_HITS, ["m", "main"], 4) in sent
    assert (REQUEST_SUCCESS, ["m", "stop", "main"], 1) in sent and (REQUEST_FAILURE, ["m", "400", "main"], 1) in sent
    assert (REQUESTS_RUNNING, ["m", "7"], 3.0) in sent
    count_outcomes(stats, [{"ok": True, "prompt_tokens": 5, "sequences": []}])
    stats.set(REQUESTS_RUNNING, 0)
    assert sorted(updates(first, stats.snapshot(), "m", "7")) == sorted(
        [
            ("tsserve_prefix_cache_queries_total", ["m", "main"], 5),
            (PROMPT_TOKENS, ["m", "main"], 5),
            (REQUESTS_RUNNING, ["m", "7"], 0.0),
        ]
    )


def test_lines_through_torchserve_s_metrics_cache_with_the_generated_config(caplog):
    from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

    cache = MetricsCacheYamlImpl(config_file_path=str(ROOT / "configs" / "torchserve" / "metrics.yaml"))
    cache.initialize_cache()
    stats = EngineStats()
    count_outcomes(stats, [{"ok": True, "prompt_tokens": 12, "sequences": [{"finish_reason": "length", "logprobs": {"token_ids": [5]}}]}])
    stats.observe(TIME_TO_FIRST_TOKEN, 0.03)
    with caplog.at_level(logging.INFO):
        MetricsPublisher(stats, cache, "m", "7").publish()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[METRICS]")]
    prompt_line = "[METRICS]tsserve_prompt_tokens_total.Count:12|#model_name:m,stage:main|#type:COUNTER|"
    assert any(line.startswith(prompt_line) for line in lines), lines
    assert any(
        line.startswith("[METRICS]tsserve_time_to_first_token_seconds_bucket.Seconds:1|#model_name:m,le:0.04|#type:COUNTER|")
        for line in lines
    )
    assert not [r for r in caplog.records if "Failed to update metric" in r.getMessage()]


def test_a_cache_that_refuses_is_logged_once_and_serving_goes_on(caplog):
    class Refusing:
        def get_metric(self, *args):
            raise KeyError("no")

        def add_metric_to_cache(self, *args):
            raise RuntimeError("refused")

    stats = EngineStats()
    count_outcomes(stats, [{"ok": True, "prompt_tokens": 3, "cached_tokens": 1, "sequences": []}])
    publisher = MetricsPublisher(stats, Refusing(), "m")
    with caplog.at_level(logging.ERROR):
        publisher.publish()
        count_outcomes(stats, [{"ok": True, "prompt_tokens": 3, "sequences": []}])
        publisher.publish()
    assert len([r for r in caplog.records if "refused the metric" in r.getMessage()]) == 1


@pytest.mark.parametrize("status", [400, 504])
def test_failures_are_counted_by_status(status):
    stats = EngineStats()
    count_outcomes(stats, [{"ok": False, "status": status, "message": "x"}] * 2)
    assert stats.snapshot().counters[(REQUEST_FAILURE, (str(status), "main"))] == 2


def test_each_count_carries_its_model_call_s_handler_stage():
    """AgentInstruct's two calls (explanation, then answer) are told apart by the `stage` label; a request
    that names no stage is `main`."""
    stats = EngineStats()
    explanation = make_request("q", max_tokens=4) | {"stage": "explanation"}
    answer = make_request("q", max_tokens=1) | {"stage": "answer"}
    ok = {"ok": True, "prompt_tokens": 6, "sequences": [{"finish_reason": "stop", "logprobs": {"token_ids": [1, 2]}}]}
    count_outcomes(stats, [ok, ok], request_stages([explanation, make_request("q", max_tokens=2)]))
    count_outcomes(stats, [{"ok": False, "status": 504, "message": "late"}], request_stages([answer]))
    counters = stats.snapshot().counters
    assert counters[(PROMPT_TOKENS, ("explanation",))] == 6 and counters[(PROMPT_TOKENS, ("main",))] == 6
    assert counters[(REQUEST_SUCCESS, ("stop", "explanation"))] == 1 and counters[(REQUEST_FAILURE, ("504", "answer"))] == 1
    assert (PROMPT_TOKENS, ("answer",)) not in counters


def test_tsserve_llm_metrics_off_publishes_nothing(monkeypatch):
    from tsserve_shim.engine.common.stats import metrics_enabled
    from tsserve_shim.worker.metrics import start_publishing

    class Engine:
        stats = EngineStats()

    class Context:
        metrics = object()

    assert metrics_enabled({}) and metrics_enabled({"TSSERVE_LLM_METRICS": "on"})
    assert not any(metrics_enabled({"TSSERVE_LLM_METRICS": v}) for v in ("off", "0", "False", " no "))
    monkeypatch.setenv("TSSERVE_LLM_METRICS", "off")
    assert start_publishing(Engine(), Context(), "m") is None

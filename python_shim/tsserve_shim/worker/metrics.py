"""What the worker reports per generate call, in its log and as TorchServe metrics.

TorchServe's Python worker prints metrics added to ``context.metrics`` to its
stdout, and the frontend files them in ``logs/model_metrics.log`` (the default
``metrics_mode: log``); in ``prometheus`` mode a metric shows on the metrics API
once the metrics config names it (docs/operations.md).
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

logger = logging.getLogger(__name__)

PROMPT_TOKENS = "PromptTokens"
PREFIX_CACHE_HIT_TOKENS = "PrefixCacheHitTokens"


def prefix_cache_counts(outcomes: Sequence[dict]) -> tuple[int, int]:
    """Prompt tokens, and of those the ones taken from the prefix cache, over a call's answered requests."""
    answered = [o for o in outcomes if o.get("ok")]
    return sum(int(o["prompt_tokens"]) for o in answered), sum(int(o.get("cached_tokens", 0)) for o in answered)


def report_generated(context: Any, model_name: str, outcomes: Sequence[dict]) -> None:
    prompt, cached = prefix_cache_counts(outcomes)
    if not prompt:
        return
    logger.info("tsserve: %s: prefix cache hit %d of %d prompt tokens (%.0f%%)", model_name, cached, prompt, 100.0 * cached / prompt)
    metrics = getattr(context, "metrics", None)
    if metrics is None:
        return
    try:
        metrics.add_counter(PROMPT_TOKENS, prompt)
        metrics.add_counter(PREFIX_CACHE_HIT_TOKENS, cached)
    except Exception:  # noqa: BLE001 - a metrics backend that refuses must not fail the request
        logger.debug("tsserve: metrics not recorded", exc_info=True)

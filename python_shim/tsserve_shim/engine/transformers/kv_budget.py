"""The transformers engine's KV budget: how many bytes of KV cache the running batch and the prefix
cache may hold together, and whether rows fit in it.

A decode batch is left-padded: every row takes the batch's full width, and the width grows by one
position a step until a row leaves. So a batch of ``rows`` rows, ``width`` positions wide, whose
longest-running row still has ``remaining`` tokens to generate holds at most
``rows * (width + remaining)`` positions of KV; joining it to another batch copies one layer at a
time (the padded copy and the concatenation: two layers' worth of the joined batch at once). The
scheduler admits rows only while that peak fits; the prefix cache gets what the rows leave.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from ...model.handler_config import DEFAULTS, ModelConfigError
from ...model.load_plan import LoadPlan

# Share of what gpu_max_memory leaves after the weights that goes to KV; the rest is for activations
# (a prefill's hidden states and logits) and the allocator's fragmentation.
KV_SHARE_OF_FREE_MEMORY = 0.8
# The prefix cache's default size where there is a KV budget: a quarter of it, at most handler.prefix_cache_mb's default.
PREFIX_SHARE_OF_BUDGET = 0.25


def kv_bytes_per_token(model) -> int:
    """Bytes of KV one position of one row takes: keys and values of every layer."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    dtype = getattr(model, "dtype", torch.float32)
    element = torch.finfo(dtype).bits // 8 if dtype.is_floating_point else 2
    return 2 * int(config.num_hidden_layers) * kv_heads * head_dim * element


@dataclass(frozen=True)
class KvShape:
    """The extent of a batch's KV: rows, width (positions held) and the most tokens any row still generates."""

    rows: int = 0
    width: int = 0
    remaining: int = 0

    def joined(self, other: KvShape) -> KvShape:
        return KvShape(self.rows + other.rows, max(self.width, other.width), max(self.remaining, other.remaining))

    @staticmethod
    def of_new_rows(rows: Iterable) -> KvShape:
        rows = list(rows)
        return KvShape(len(rows), max((len(r.prompt_ids) for r in rows), default=0), max((r.max_tokens for r in rows), default=0))

    @staticmethod
    def of_batch(batch) -> KvShape:
        if batch is None:
            return KvShape()
        live = [r for r in batch.rows if not r.done]
        remaining = max((r.max_tokens - len(r.chosen_ids) for r in live), default=0)
        return KvShape(len(batch.rows), int(batch.mask.shape[1]), max(0, remaining))


@dataclass(frozen=True)
class KvBudget:
    total_bytes: int
    bytes_per_token: int
    layers: int

    def need(self, shape: KvShape) -> int:
        """Bytes the batch may come to hold, with a join's transient copy."""
        peak = shape.rows * (shape.width + shape.remaining) * self.bytes_per_token
        join = 2 * shape.rows * shape.width * self.bytes_per_token // max(1, self.layers)
        return peak + join

    def fits(self, shape: KvShape) -> bool:
        return self.need(shape) <= self.total_bytes

    def describe(self, shape: KvShape) -> str:
        return (
            f"{shape.rows} rows of up to {shape.width + shape.remaining} positions need {self.need(shape) / 2**20:.1f} MiB "
            f"of KV cache and the budget is {self.total_bytes / 2**20:.1f} MiB (handler.kv_cache_mb, or what "
            "handler.gpu_max_memory leaves after the weights)"
        )


class KvBudgetError(RuntimeError):
    """A call that does not fit in the KV budget even alone (answered 507: the message says out of memory)."""


def kv_budget_bytes(kv_cache_mb: float | None, plan: LoadPlan | None, weights_bytes: int) -> int | None:
    """``handler.kv_cache_mb``, else on GPUs a share of what the worker's GPU memory (``gpu_max_memory``
    or the default share of each GPU) leaves after the weights; None (unbounded) on a CPU without kv_cache_mb."""
    if kv_cache_mb is not None:
        return int(kv_cache_mb * 2**20)
    if plan is None or not plan.on_gpu or plan.placement is None:
        return None
    memory = sum(size for size in plan.placement.max_memory.values() if size > 0)
    free = memory - weights_bytes
    if free <= 0:
        raise ModelConfigError(
            f"the weights ({weights_bytes / 2**30:.2f} GiB) leave no room for a KV cache in the worker's GPU memory "
            f"({memory / 2**30:.2f} GiB): raise handler.gpu_max_memory or num_gpu_per_model, quantize, or set handler.kv_cache_mb"
        )
    return int(free * KV_SHARE_OF_FREE_MEMORY)


def budget_for(model, total_bytes: int | None) -> KvBudget | None:
    if total_bytes is None:
        return None
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return KvBudget(total_bytes, kv_bytes_per_token(model), int(config.num_hidden_layers))


def prefix_cache_bytes(prefix_cache_mb: float | None, budget: KvBudget | None = None) -> int:
    """``handler.prefix_cache_mb`` in bytes (0 turns prefix caching off); when not set, the schema's default,
    or a quarter of the KV budget where that is less."""
    if prefix_cache_mb is not None:
        return int(prefix_cache_mb * 2**20)
    default = int(DEFAULTS["prefix_cache_mb"] * 2**20)
    return default if budget is None else min(default, int(budget.total_bytes * PREFIX_SHARE_OF_BUDGET))

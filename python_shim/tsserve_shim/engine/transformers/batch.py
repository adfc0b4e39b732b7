"""The running decode batch between steps: its rows, their KV cache, attention mask, positions,
next-token logits and per-row sampling settings as tensors, kept in step and pruned together; and
DecodeRow, a row as this engine decodes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..common.rows import Row
from ..common.sampling import row_key
from .kv_cache import (
    crop_layers,
    drop_columns,
    join_caches,
    layer_lengths,
    left_pad,
    mergeable,
    padding_columns,
    row_positions,
    select_rows,
)
from .transformers_compat import forward_with_cache


@dataclass(eq=False)
class DecodeRow(Row):
    """A row of the transformers engine: its sampling settings as the batch's tensors take them, and its
    grammar matcher (grammar.py)."""

    temperature: float = field(init=False)
    top_p: float = field(init=False)
    top_k: int = field(init=False)
    penalty: float = field(init=False)
    key: int = field(init=False)  # the sampling key (common/sampling.row_key)
    grammar: Any = None  # made at its first decode step

    def __post_init__(self) -> None:
        params = self.params
        self.temperature = params.temperature
        self.top_p = min(1.0, max(0.0, params.top_p))
        self.top_k = max(0, params.top_k)
        self.penalty = params.repetition_penalty
        self.key = row_key(params.seed, self.sequence)

    @property
    def structured(self):
        """The request's structured output (common/structured.py), None for free text."""
        return self.params.structured


class DecodeBatch:
    _PER_ROW = ("mask", "last_pos", "logits", "temperature", "top_k", "top_p", "keys", "steps", "seen", "penalty", "chosen")
    _JOINED = ("last_pos", "logits", "temperature", "top_k", "top_p", "keys", "steps", "seen", "penalty")

    def __init__(
        self, rows: list[DecodeRow], cache, mask: torch.Tensor, last_pos: torch.Tensor, logits: torch.Tensor, seen: torch.Tensor | None
    ) -> None:
        device = mask.device
        self.rows = list(rows)
        self.cache = cache
        self.mask = mask  # [B, S]: 1 where a row has a real token
        self.last_pos = last_pos  # [B]: position of each row's last token
        self.logits = logits  # [B, V]: float32 next-token logits
        self.temperature = torch.tensor([r.temperature for r in rows], dtype=torch.float32, device=device)
        self.top_k = torch.tensor([r.top_k for r in rows], dtype=torch.long, device=device)
        self.top_p = torch.tensor([r.top_p for r in rows], dtype=torch.float32, device=device)
        self.keys = torch.tensor([r.key for r in rows], dtype=torch.long, device=device)
        self.steps = torch.zeros(len(rows), dtype=torch.long, device=device)
        self.seen = seen  # [B, V] bool: tokens seen, for the repetition penalty (None when no row has one)
        self.penalty = torch.tensor([r.penalty for r in rows], dtype=torch.float32, device=device) if seen is not None else None
        self.chosen: torch.Tensor | None = None
        self.chosen_list: list[int] = []

    @property
    def joinable(self) -> bool:
        """Whether other rows can join this batch (plain dynamic KV layers only)."""
        return mergeable(self.cache)

    def tokens_held(self, j: int) -> int:
        """How many positions of row ``j`` the KV cache holds."""
        return int(self.mask[j].sum())

    def row_kv(self, j: int):
        """``kv(start, end)``: copies of row ``j``'s KV for its positions [start, end), every layer
        stacked ([layers, heads, end - start, head_dim]). The first call gathers the row's positions
        from ``start`` on, in one copy per layer; later calls slice that."""
        columns = self.mask[j].nonzero().squeeze(-1)
        held: dict = {}

        def kv(start: int, end: int):
            if "from" not in held or start < held["from"]:
                keys, values = row_positions(self.cache, j, columns[start:])
                held.update({"from": start, "keys": keys, "values": values})
                if len({t.device for t in held["keys"]}) == 1:  # a model spread over GPUs keeps one tensor per layer
                    held["keys"], held["values"] = torch.stack(held["keys"]), torch.stack(held["values"])
            a, b = start - held["from"], end - held["from"]
            return _positions(held["keys"], a, b), _positions(held["values"], a, b)

        return kv

    def take(self, chosen: torch.Tensor) -> None:
        """Record the tokens just chosen (one per row)."""
        self.chosen = chosen
        self.chosen_list = chosen.tolist()
        self.steps = self.steps + 1
        if self.seen is not None:
            self.seen.scatter_(1, chosen.unsqueeze(-1), True)

    def prune(self) -> bool:
        """Drop the rows that are done; False when none is left."""
        still = [j for j, row in enumerate(self.rows) if not row.done]
        if len(still) == len(self.rows):
            return bool(still)
        self.rows = [self.rows[j] for j in still]
        if not still:
            return False
        keep = torch.tensor(still, dtype=torch.long, device=self.mask.device)
        select_rows(self.cache, keep)
        for name in self._PER_ROW:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[keep])
        self.chosen_list = [self.chosen_list[j] for j in still] if self.chosen_list else []
        self._trim()
        return True

    def _trim(self) -> None:
        """Cut the leading columns that only the rows gone needed."""
        columns = padding_columns(self.mask)
        if columns and mergeable(self.cache):
            drop_columns(self.cache, columns)
            self.mask = self.mask[:, columns:]

    def join(self, other: DecodeBatch) -> None:
        """Take in another batch's rows (one just prefilled): both must be between steps (logits ready, nothing chosen)."""
        width = max(self.mask.shape[1], other.mask.shape[1])
        join_caches(self.cache, other.cache, width)
        self.mask = torch.cat([left_pad(self.mask, width, 1), left_pad(other.mask, width, 1)], dim=0)
        if (self.seen is None) != (other.seen is None):
            for batch in (self, other):
                if batch.seen is None:
                    batch.seen = torch.zeros((len(batch.rows), batch.logits.shape[-1]), dtype=torch.bool, device=batch.logits.device)
                    batch.penalty = torch.ones(len(batch.rows), dtype=torch.float32, device=batch.logits.device)
        for name in self._JOINED:
            mine = getattr(self, name)
            if mine is not None:
                setattr(self, name, torch.cat([mine, getattr(other, name)], dim=0))
        self.rows += other.rows
        self.chosen, self.chosen_list = None, []

    def forward(self, model) -> None:
        """Feed the chosen tokens: the next logits of every row. When the forward raises, a batch of
        plain layers is left as it was before it (``retryable``): rows can leave and it can run again."""
        lengths = layer_lengths(self.cache) if self.joinable else None
        mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=1)
        try:
            out, self.cache = forward_with_cache(
                model,
                self.cache,
                input_ids=self.chosen.unsqueeze(-1),
                attention_mask=mask,
                position_ids=(self.last_pos + 1).unsqueeze(-1),
                logits_to_keep=1,
            )
            logits = out.logits[:, -1, :].to(device=mask.device, dtype=torch.float32)  # the last layer's device may be another
        except BaseException:
            if lengths is not None:
                crop_layers(self.cache, lengths)
            raise
        self.mask, self.last_pos, self.logits = mask, self.last_pos + 1, logits

    @property
    def retryable(self) -> bool:
        """Whether a forward that raised left the batch as it was (plain dynamic layers only)."""
        return self.joinable


def _positions(kv, start: int, end: int):
    """Copies of positions [start, end) of stacked layers (one tensor) or of each layer (a list)."""
    if isinstance(kv, torch.Tensor):
        return kv[:, :, start:end].clone()
    return [t[:, start:end].clone() for t in kv]

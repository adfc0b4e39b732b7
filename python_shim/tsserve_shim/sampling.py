"""Next-token selection for a batch whose rows each have their own settings.

Small tensor functions (the order follows transformers' logits processors):
repetition penalty -> temperature -> top-k -> top-p -> sample. Rows with
temperature 0 are greedy (argmax after the repetition penalty). Every sampling
row draws from its own ``torch.Generator``, so a seeded row gives the same
tokens whatever else shares its batch.
"""
from __future__ import annotations

import secrets
from typing import Sequence

import torch

_GOLDEN = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1


def row_seed(seed: int | None, sequence_index: int) -> int:
    """The seed of one sampled sequence: the request's seed for sequence 0, a mix of it for the others."""
    if seed is None:
        return secrets.randbits(63)
    value = (int(seed) + sequence_index * _GOLDEN) & _MASK64
    return value


def make_generator(seed: int | None, sequence_index: int, device: torch.device | str) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(row_seed(seed, sequence_index))
    return gen


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """Penalise tokens already in the row (prompt or output): positive logits divided, negative multiplied.

    logits [B, V] float, seen [B, V] bool, penalty [B, 1] float (1.0 = off).
    """
    penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalised, logits)


def filter_top_k_top_p(logits: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Mask (to -inf) what lies outside each row's top-k and nucleus.

    top_k [B] long (0 = off), top_p [B] float (>= 1 = off). The most likely token always stays.
    """
    ordered, order = logits.sort(dim=-1, descending=True)
    ranks = torch.arange(logits.shape[-1], device=logits.device)
    k = top_k.unsqueeze(-1)
    outside_k = (k > 0) & (ranks.unsqueeze(0) >= k)
    ordered = ordered.masked_fill(outside_k, float("-inf"))
    probs = ordered.softmax(dim=-1)
    before = probs.cumsum(dim=-1) - probs  # probability mass of the better tokens
    p = top_p.unsqueeze(-1)
    outside_p = (p < 1.0) & (before > p)
    ordered = ordered.masked_fill(outside_p, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, ordered)


def logits_to_probs(logits: torch.Tensor, temperature: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Sampling distribution per row. temperature [B] > 0."""
    scaled = logits / temperature.unsqueeze(-1)
    if bool(((top_k > 0) | (top_p < 1.0)).any()):
        scaled = filter_top_k_top_p(scaled, top_k, top_p)
    return scaled.softmax(dim=-1)


def sample_rows(probs: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """One token per row, each drawn with its own generator (exponential race: argmax p / E, E ~ Exp(1))."""
    noise = torch.empty_like(probs)
    for row, gen in enumerate(generators):
        noise[row].exponential_(1.0, generator=gen)
    return (probs / noise).argmax(dim=-1)


def select_tokens(
    logits: torch.Tensor,
    *,
    temperature: torch.Tensor,
    top_k: torch.Tensor,
    top_p: torch.Tensor,
    penalty: torch.Tensor | None,
    seen: torch.Tensor | None,
    generators: Sequence[torch.Generator | None],
) -> torch.Tensor:
    """The next token of every row: greedy where temperature is 0, sampled elsewhere. logits [B, V] float32."""
    if penalty is not None and seen is not None:
        logits = apply_repetition_penalty(logits, seen, penalty.unsqueeze(-1))
    chosen = logits.argmax(dim=-1)
    sampling = [row for row, gen in enumerate(generators) if gen is not None]
    if sampling:
        index = torch.tensor(sampling, device=logits.device)
        probs = logits_to_probs(logits[index], temperature[index], top_k[index], top_p[index])
        drawn = sample_rows(probs, [generators[row] for row in sampling])
        chosen = chosen.index_copy(0, index, drawn)
    return chosen

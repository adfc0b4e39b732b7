"""Next-token selection for a batch whose rows each have their own settings.

The semantics are transformers' (``generate`` with ``do_sample=True``), in its
order: repetition penalty -> temperature -> top-k -> top-p -> draw.

- temperature below ``GREEDY_BELOW`` (1e-5, 0 included) is greedy: argmax
  after the repetition penalty (dividing by 1e-39 would overflow to NaN).
- top_k 0 is off; otherwise every token whose logit equals the k-th largest
  stays too (``TopKLogitsWarper``'s ties).
- top_p 1 is off; top_p 0 keeps only the most likely token, as
  ``TopPLogitsWarper(0.0)`` and OpenAI do (the seed's default request).

Speed: when every sampled row has a top_k, the rows are cut to their
``topk(max k)`` candidates, which come sorted, so top-p needs no sort of the
vocabulary; only a row with top_p and no top_k sorts the whole vocabulary.
The draw is an inverse-CDF lookup with one uniform number per row, made by a
counter-based hash (splitmix64) of the row's key and its step, all rows in one
tensor expression: a seeded row draws the same numbers whatever shares its
batch, and no per-row generator or Python loop is involved.
"""

from __future__ import annotations

import torch

# GREEDY_BELOW and the rows' keys (row_key) are both engines' (common/sampling.py); the draws below
# use the same 64-bit arithmetic as the keys.
from ..common.sampling import _GOLDEN, GREEDY_BELOW, _signed64

_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def _shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 values (torch's >> is arithmetic)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def mix64(x: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser on int64 tensors (wrapping arithmetic)."""
    x = x ^ _shift_right(x, 30)
    x = x * _signed64(_MIX1)
    x = x ^ _shift_right(x, 27)
    x = x * _signed64(_MIX2)
    return x ^ _shift_right(x, 31)


def uniforms(keys: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """One uniform number in (0, 1] per row (float64), a function of the row's key and step only."""
    z = mix64(keys + (steps + 1) * _signed64(_GOLDEN))
    return (_shift_right(z, 11) + 1).to(torch.float64) / float(1 << 53)


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """Penalise tokens already in the row (prompt or output): positive logits divided, negative multiplied.

    logits [B, V] float, seen [B, V] bool, penalty [B, 1] float (1.0 = off).
    """
    penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalised, logits)


def mask_below_kth(values: torch.Tensor, reference: torch.Tensor, top_k: torch.Tensor) -> torch.Tensor:
    """-inf where a value is below its row's k-th largest of ``reference`` (sorted descending); rows with k 0 untouched."""
    kth = reference.gather(1, (top_k.clamp(min=1) - 1).unsqueeze(-1))
    kth = torch.where(top_k.unsqueeze(-1) > 0, kth, torch.full_like(kth, float("-inf")))
    return values.masked_fill(values < kth, float("-inf"))


def mask_top_p(descending: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Top-p on rows sorted in descending order, as TopPLogitsWarper computes it.

    A token goes when the probability of it and every less likely token is at
    most 1 - top_p; the most likely token always stays. Rows with top_p >= 1 are untouched.
    """
    probs = descending.softmax(dim=-1)
    tail = probs.flip(-1).cumsum(dim=-1).flip(-1)
    remove = (tail <= (1.0 - top_p).unsqueeze(-1)) & (top_p < 1.0).unsqueeze(-1)
    remove[:, 0] = False
    return descending.masked_fill(remove, float("-inf"))


def candidates(
    logits: torch.Tensor, temperature: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Every sampled row's distribution over its candidate tokens: (probs [S, M], token ids [S, M] or None for the vocabulary).

    logits [S, V] float32 (after the repetition penalty), temperature [S] >= GREEDY_BELOW,
    top_k [S] long (0 = off), top_p [S] float (>= 1 = off).
    """
    vocab = logits.shape[-1]
    top_k = top_k.clamp(min=0, max=vocab)
    nucleus = bool((top_p < 1.0).any())
    values, ids = None, None
    if bool((top_k > 0).all()):
        k_max = int(top_k.max())
        # One candidate more than needed: when it ties with a row's k-th value, ties may reach further.
        values, ids = logits.topk(min(k_max + 1, vocab), dim=-1)
        kth = values.gather(1, (top_k - 1).unsqueeze(-1))
        if k_max < vocab and bool((values[:, k_max : k_max + 1] >= kth).any()):
            values, ids = None, None  # take the whole vocabulary
        else:
            values = mask_below_kth(values[:, :k_max], values, top_k)
            ids = ids[:, :k_max]
    if values is None:
        if nucleus:
            values, ids = logits.sort(dim=-1, descending=True)
            reference = values
        else:
            values = logits
            reference = logits.topk(int(top_k.max()), dim=-1).values if bool((top_k > 0).any()) else None
        if reference is not None:
            values = mask_below_kth(values, reference, top_k)
    scaled = values / temperature.unsqueeze(-1)
    if nucleus:
        scaled = mask_top_p(scaled, top_p)
    return scaled.softmax(dim=-1), ids


def draw(probs: torch.Tensor, ids: torch.Tensor | None, keys: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """One token per row by inverse CDF: the first candidate whose cumulative probability reaches u x total."""
    cdf = probs.to(torch.float64).cumsum(dim=-1)
    target = uniforms(keys, steps).unsqueeze(-1) * cdf[:, -1:]
    pick = torch.searchsorted(cdf, target).clamp(max=probs.shape[-1] - 1)
    if ids is None:
        return pick.squeeze(-1)
    return ids.gather(1, pick).squeeze(-1)


def select_tokens(
    logits: torch.Tensor,
    *,
    temperature: torch.Tensor,
    top_k: torch.Tensor,
    top_p: torch.Tensor,
    penalty: torch.Tensor | None,
    seen: torch.Tensor | None,
    keys: torch.Tensor,
    steps: torch.Tensor,
) -> torch.Tensor:
    """The next token of every row: greedy where temperature < GREEDY_BELOW, drawn elsewhere. logits [B, V] float32.

    keys [B] int64 (row_key), steps [B] int64: the row's count of drawn tokens.
    """
    if penalty is not None and seen is not None:
        logits = apply_repetition_penalty(logits, seen, penalty.unsqueeze(-1))
    sampled = temperature >= GREEDY_BELOW
    if not bool(sampled.any()):
        return logits.argmax(dim=-1)
    if bool(sampled.all()):
        probs, ids = candidates(logits, temperature, top_k, top_p)
        return draw(probs, ids, keys, steps)
    chosen = logits.argmax(dim=-1)
    index = sampled.nonzero().squeeze(-1)
    probs, ids = candidates(logits[index], temperature[index], top_k[index], top_p[index])
    return chosen.index_copy(0, index, draw(probs, ids, keys[index], steps[index]))

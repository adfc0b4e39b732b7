"""What a request's sampling settings mean to both engines: the temperature below which a row is
greedy (``GREEDY_BELOW``: 1e-5, 0 included), and each sampled sequence's key (``row_key``), made
from its request's seed and its sequence index.

The transformers engine draws every sampled row's tokens from its key (transformers/sampling.py);
the vLLM engine asks vLLM for temperature 0 below GREEDY_BELOW.
"""

from __future__ import annotations

import secrets

GREEDY_BELOW = 1e-5

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _signed64(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def row_seed(seed: int | None, sequence_index: int) -> int:
    """The key of one sampled sequence (unsigned 64-bit): the request's seed for sequence 0, a mix of it for the others."""
    if seed is None:
        return secrets.randbits(64)
    return (int(seed) + sequence_index * _GOLDEN) & _MASK64


def row_key(seed: int | None, sequence_index: int) -> int:
    """row_seed as the signed 64-bit integer a torch.int64 tensor holds."""
    return _signed64(row_seed(seed, sequence_index))

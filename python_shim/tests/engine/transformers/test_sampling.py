"""The sampler against transformers' own warpers (the reference for its semantics), and its draws.

Each row's distribution (`candidates`) must equal what `generate(do_sample=True)`
samples from: TemperatureLogitsWarper -> TopKLogitsWarper -> TopPLogitsWarper,
then softmax; the draw must follow that distribution and depend only on the
row's key and step.
"""

from __future__ import annotations

import random

import pytest
import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from tsserve_shim.engine.common.sampling import GREEDY_BELOW, row_key
from tsserve_shim.engine.transformers.sampling import apply_repetition_penalty, candidates, draw, mix64, select_tokens, uniforms

VOCAB = 300


def reference_probs(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """What transformers' generate samples from for one row [V] (its warpers as generate builds them)."""
    warpers = LogitsProcessorList()
    if temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(float(temperature)))
    if top_k != 0:
        warpers.append(TopKLogitsWarper(top_k=top_k))
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=top_p))
    return warpers(None, logits.unsqueeze(0)).softmax(dim=-1)[0]


def ours(logits: torch.Tensor, settings: list[tuple[float, int, float]]) -> torch.Tensor:
    """Our per-row distributions over the whole vocabulary [B, V]."""
    probs, ids = candidates(
        logits,
        torch.tensor([s[0] for s in settings]),
        torch.tensor([s[1] for s in settings]),
        torch.tensor([s[2] for s in settings]),
    )
    if ids is None:
        return probs
    return torch.zeros_like(logits).scatter(1, ids, probs)


SETTINGS = [
    (0.8, 50, 0.0),  # the seed's default request: top_p 0 keeps the top token only
    (0.8, 50, 1.0),  # the benchmark setting: top_k only
    (1.0, 0, 0.9),
    (0.7, 40, 0.7),
    (1.5, 0, 1.0),  # temperature only
    (0.3, 5, 0.5),
    (1.2, 1, 1.0),
    (0.9, 0, 0.0),
    (2.0, VOCAB + 10, 0.95),  # top_k beyond the vocabulary
]


def check_against_reference(logits: torch.Tensor, settings: list[tuple[float, int, float]]) -> None:
    got = ours(logits, settings)
    for row, (temperature, top_k, top_p) in enumerate(settings):
        want = reference_probs(logits[row], temperature, top_k, top_p)
        assert (got[row] > 0).tolist() == (want > 0).tolist(), (temperature, top_k, top_p)
        assert got[row].tolist() == pytest.approx(want.tolist(), abs=1e-6)


@pytest.mark.parametrize("setting", SETTINGS)
def test_one_row_equals_transformers_warpers(setting):
    logits = torch.randn(1, VOCAB, generator=torch.Generator().manual_seed(hash(setting) % 1000)) * 3
    check_against_reference(logits, [setting])


@pytest.mark.parametrize("mix", [SETTINGS, [s for s in SETTINGS if s[1] > 0], [s for s in SETTINGS if s[1] == 0]])
def test_a_batch_of_mixed_rows_equals_transformers_row_by_row(mix):
    # All rows with top_k: the candidate path (no sort of the vocabulary); with a top_k-free row: the whole vocabulary.
    logits = torch.randn(len(mix), VOCAB, generator=torch.Generator().manual_seed(len(mix))) * 4
    check_against_reference(logits, mix)


def test_top_p_zero_keeps_only_the_most_likely_token():
    logits = torch.randn(3, VOCAB, generator=torch.Generator().manual_seed(3))
    probs = ours(logits, [(0.8, 50, 0.0), (1.5, 0, 0.0), (1.0, 0, 0.0)])
    assert torch.equal(probs.argmax(-1), logits.argmax(-1))
    assert probs.max(-1).values.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("top_k", [1, 2, 3, 7])
def test_top_k_keeps_every_token_tied_with_the_kth(top_k):
    # Values on a coarse grid: many exact ties, some of which reach past top_k (and past the largest k in the batch).
    grid = torch.randint(-6, 7, (4, VOCAB), generator=torch.Generator().manual_seed(top_k)).float() / 2
    settings = [(1.0, top_k, 1.0), (0.5, top_k, 1.0), (1.0, 2, 1.0), (1.3, top_k + 1, 1.0)]
    check_against_reference(grid, settings)
    kth = grid[0].topk(top_k).values[-1]
    assert int((ours(grid, settings)[0] > 0).sum()) == int((grid[0] >= kth).sum()) > top_k


def test_temperatures_below_the_epsilon_are_greedy():
    logits = torch.randn(4, VOCAB, generator=torch.Generator().manual_seed(4)) * 5
    temperature = torch.tensor([1e-39, 0.0, GREEDY_BELOW / 2, 1.0])
    chosen = select_tokens(
        logits,
        temperature=temperature,
        top_k=torch.tensor([0, 50, 0, 1]),
        top_p=torch.tensor([1.0, 1.0, 0.5, 1.0]),
        penalty=None,
        seen=None,
        keys=torch.tensor([1, 2, 3, 4]),
        steps=torch.zeros(4, dtype=torch.long),
    )
    assert chosen.tolist() == logits.argmax(-1).tolist()


def test_repetition_penalty_matches_the_formula():
    logits = torch.tensor([[2.0, -2.0, 1.0], [2.0, -2.0, 1.0]])
    seen = torch.tensor([[True, True, False], [False, False, False]])
    out = apply_repetition_penalty(logits, seen, torch.tensor([[2.0], [2.0]]))
    assert out.tolist() == [[1.0, -4.0, 1.0], [2.0, -2.0, 1.0]]


def splitmix64(value: int) -> int:
    """The reference finaliser on Python integers."""
    mask = (1 << 64) - 1
    value &= mask
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & mask
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & mask
    return value ^ (value >> 31)


def test_the_hash_is_splitmix64():
    rng = random.Random(0)
    values = [rng.getrandbits(64) for _ in range(2000)] + [0, 1, (1 << 63), (1 << 64) - 1]
    signed = torch.tensor([v - (1 << 64) if v >= 1 << 63 else v for v in values], dtype=torch.long)
    got = [v & ((1 << 64) - 1) for v in mix64(signed).tolist()]
    assert got == [splitmix64(v) for v in values]


def test_uniforms_are_in_the_unit_interval_and_uniform():
    keys = torch.full((20000,), row_key(7, 0), dtype=torch.long)
    u = uniforms(keys, torch.arange(20000))
    assert float(u.min()) > 0.0 and float(u.max()) <= 1.0
    counts = torch.histc(u, bins=10, min=0, max=1)
    assert (counts / 20000).tolist() == pytest.approx([0.1] * 10, abs=0.012)


def test_draws_follow_the_distribution():
    probs = torch.tensor([[0.5, 0.0, 0.3, 0.15, 0.05]]).expand(30000, 5)
    tokens = draw(probs, None, torch.full((30000,), row_key(1, 0)), torch.arange(30000))
    freq = torch.bincount(tokens, minlength=5).double() / 30000
    assert freq.tolist() == pytest.approx([0.5, 0.0, 0.3, 0.15, 0.05], abs=0.012)
    assert int(freq[1]) == 0  # a token of probability 0 is never drawn


def test_draws_over_candidates_map_back_to_token_ids():
    probs = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    ids = torch.tensor([[10, 20, 30], [40, 50, 60]])
    assert draw(probs, ids, torch.tensor([1, 2]), torch.tensor([0, 0])).tolist() == [20, 40]


def test_a_row_draws_the_same_whatever_its_batch_mates():
    logits = torch.randn(3, VOCAB, generator=torch.Generator().manual_seed(9))
    common = dict(penalty=None, seen=None)
    batch = select_tokens(
        logits,
        temperature=torch.tensor([1.0, 0.9, 0.0]),
        top_k=torch.tensor([50, 0, 0]),
        top_p=torch.tensor([1.0, 0.8, 1.0]),
        keys=torch.tensor([row_key(1, 0), row_key(2, 0), row_key(3, 0)]),
        steps=torch.tensor([4, 4, 4]),
        **common,
    )
    alone = select_tokens(
        logits[1:2],
        temperature=torch.tensor([0.9]),
        top_k=torch.tensor([0]),
        top_p=torch.tensor([0.8]),
        keys=torch.tensor([row_key(2, 0)]),
        steps=torch.tensor([4]),
        **common,
    )
    assert batch[1].item() == alone.item()


def test_top_k_ties_inside_the_candidates_are_kept_without_the_whole_vocabulary():
    # Row 0: k 2 and its 2nd value tied with the 3rd and 4th; row 1's larger k (6) makes those candidates anyway.
    logits = torch.randn(2, VOCAB, generator=torch.Generator().manual_seed(11)) - 10
    logits[0, [5, 9, 17, 40]] = torch.tensor([3.0, 2.0, 2.0, 2.0])
    settings = [(1.0, 2, 1.0), (0.9, 6, 1.0)]
    check_against_reference(logits, settings)
    probs, ids = candidates(logits, torch.tensor([1.0, 0.9]), torch.tensor([2, 6]), torch.tensor([1.0, 1.0]))
    assert ids is not None and ids.shape[1] == 6  # the candidate path, not the vocabulary
    assert int((probs[0] > 0).sum()) == 4

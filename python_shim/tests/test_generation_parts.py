"""Stop matching, incremental detokenization and the sampling functions, on their own."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tsserve_shim.detokenize import IncrementalDecoder, token_strings
from tsserve_shim.sampling import apply_repetition_penalty, filter_top_k_top_p, make_generator, row_seed, sample_rows
from tsserve_shim.stopping import StopMatcher


def test_stop_matcher_finds_the_earliest():
    m = StopMatcher(["\nQ:", " world", ""])
    assert m.find("hello world\nQ:") == 5
    assert m.find("abc") is None
    assert m.find("xx\nQ: and world", new_from=10) == 9  # stops wholly before new_from were seen earlier
    assert m.find("xx\nQ: and world", new_from=4) == 2  # a stop ending after new_from counts
    assert StopMatcher([]).find("anything") is None and not StopMatcher([""])


def test_stop_matcher_holdback():
    m = StopMatcher(["\nQ:", "STOP"])
    assert m.holdback("answer\n") == 1
    assert m.holdback("answer\nQ") == 2
    assert m.holdback("answer ST") == 2
    assert m.holdback("answer") == 0
    assert m.holdback("") == 0


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab \n", max_size=30), st.lists(st.text(alphabet="ab \n", min_size=1, max_size=4), min_size=1, max_size=3))
def test_streaming_holdback_never_leaks_a_stop(text, stops):
    m = StopMatcher(stops)
    at = m.find(text)
    visible = text if at is None else text[:at]
    for n in range(len(visible) + 1):
        prefix = visible[:n]
        safe = prefix[: len(prefix) - m.holdback(prefix)]
        assert all(s not in safe for s in stops)
        if at is not None:
            assert at >= len(safe)  # what was streamed is never cut later


def test_token_strings_add_up(engine):
    for text in ["Hello world", "naïve café 你好\n\nQ: A:", "  two spaces", "<s>[INST] hi"]:
        ids = engine.encode_prompt(text)
        assert "".join(token_strings(engine.tokenizer, ids)) == engine.detokenize([ids])[0]


def test_incremental_decoder_holds_partial_characters(engine):
    ids = engine.tokenize(["é你"], False)[0]  # byte-fallback tokens for some characters
    dec = IncrementalDecoder(engine.tokenizer, [1])
    pieces = [dec.step(t) for t in ids]
    assert "".join(pieces) + dec.flush() == engine.detokenize([[1] + ids])[0][len("<s>"):]
    assert all("\ufffd" not in p for p in pieces)


def test_repetition_penalty_matches_the_formula():
    logits = torch.tensor([[2.0, -2.0, 1.0], [2.0, -2.0, 1.0]])
    seen = torch.tensor([[True, True, False], [False, False, False]])
    out = apply_repetition_penalty(logits, seen, torch.tensor([[2.0], [2.0]]))
    assert out.tolist() == [[1.0, -4.0, 1.0], [2.0, -2.0, 1.0]]


def test_top_k_top_p_filtering_per_row():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]] * 3))
    out = filter_top_k_top_p(logits, torch.tensor([2, 0, 0]), torch.tensor([1.0, 0.7, 1.0]))
    kept = torch.isfinite(out).tolist()
    assert kept[0] == [True, True, False, False]  # top_k 2
    assert kept[1] == [True, True, False, False]  # top_p 0.7: 0.5 + 0.3 reaches it
    assert kept[2] == [True, True, True, True]  # off
    assert torch.allclose(out[torch.isfinite(out)], logits[torch.isfinite(out)])


def test_per_row_generators_are_independent_of_the_batch():
    probs = torch.softmax(torch.randn(3, 50, generator=torch.Generator().manual_seed(0)), dim=-1)
    together = [sample_rows(probs, [make_generator(s, 0, "cpu") for s in (1, 2, 3)]).tolist() for _ in range(2)]
    assert together[0] == together[1]
    alone = sample_rows(probs[1:2], [make_generator(2, 0, "cpu")]).tolist()
    assert alone[0] == together[0][1]
    assert row_seed(5, 0) == 5 and row_seed(5, 1) != row_seed(5, 2)


def test_exponential_race_samples_the_distribution():
    probs = torch.tensor([[0.7, 0.2, 0.1]])
    gen = make_generator(0, 0, "cpu")
    counts = [0, 0, 0]
    for _ in range(3000):
        counts[sample_rows(probs, [gen]).item()] += 1
    assert [c / 3000 for c in counts] == pytest.approx([0.7, 0.2, 0.1], abs=0.03)

"""Stop matching, incremental detokenization and the rows' sampling keys, on their own."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tsserve_shim.engine.common.detokenize import IncrementalDecoder, token_strings
from tsserve_shim.engine.common.sampling import row_seed
from tsserve_shim.engine.common.stopping import StopMatcher


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
    assert "".join(pieces) + dec.flush() == engine.detokenize([[1] + ids])[0][len("<s>") :]
    assert all("\ufffd" not in p for p in pieces)


def test_row_seeds_differ_per_sequence():
    assert row_seed(5, 0) == 5 and row_seed(5, 1) != row_seed(5, 2)
    assert row_seed(None, 0) != row_seed(None, 0)  # unseeded rows get fresh keys

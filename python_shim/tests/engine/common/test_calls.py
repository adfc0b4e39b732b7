"""One cancel semantics for both engines (common/calls.py): a cancel ends the live calls with its tag, one
that comes before its call is kept for it, and one naming a call that has ended is dropped."""

from __future__ import annotations

from tsserve_shim.engine.common.calls import Call, Calls


def call(tag) -> Call:
    return Call.submitted([{}], lambda outcomes: None, None, None, tag)


def test_a_cancel_ends_the_live_calls_with_its_tag_only():
    calls = Calls()
    first, second, other = call("a"), call("a"), call("b")
    for c in (first, second, other):
        calls.add(c)
    assert calls.cancel("a") == [first, second]
    assert first.cancelled and second.cancelled and not other.cancelled


def test_a_cancel_before_its_call_is_kept_for_it():
    calls = Calls()
    assert calls.cancel("early") == []
    late = call("early")
    calls.add(late)
    assert late.cancelled
    again = call("early")  # the kept cancel was used up by its call
    calls.add(again)
    assert not again.cancelled


def test_a_cancel_after_its_call_ended_is_dropped():
    calls = Calls()
    done = call("t")
    calls.add(done)
    calls.end(done)
    assert calls.cancel("t") == []
    reused = call("t")
    calls.add(reused)
    assert not reused.cancelled

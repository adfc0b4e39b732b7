"""How long the worker gives one request: handler.handle_timeout_s, else a little below TorchServe's responseTimeout,
and the generation's deadline a margin inside it."""

from __future__ import annotations

from tsserve_shim.worker.handle_timeout import HandleTimeout, handle_timeout


def test_handle_timeout_s_is_taken_and_named():
    assert handle_timeout(5, 120) == HandleTimeout(5.0, "handler.handle_timeout_s")


def test_without_it_the_shim_answers_a_little_before_torchserve_gives_up():
    assert handle_timeout(None, 120) == HandleTimeout(108.0, "set a little below responseTimeout 120 s")
    assert handle_timeout(None, None) == handle_timeout(None, 120)  # TorchServe's default responseTimeout
    assert handle_timeout(None, 10).seconds == 8.0
    assert handle_timeout(None, 2).seconds == 1.0


def test_the_generation_stops_a_margin_before_the_handle_deadline():
    deadline = HandleTimeout(10.0, "handler.handle_timeout_s").generation_deadline(arrived=100.0)
    assert (deadline.at, deadline.limit_s, deadline.name) == (109.5, 10.0, "handler.handle_timeout_s")
    assert HandleTimeout(2.0, "x").generation_deadline(arrived=0.0).at == 1.8

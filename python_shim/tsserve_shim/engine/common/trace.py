"""The trace id of the HTTP request a model call serves (worker/trace.py picks it), as far down as the engine:
the bridge puts it last in a generate call's engine tag, and log lines about the request carry `[request ID]`."""

from __future__ import annotations

from collections.abc import Hashable


def tagged(trace: str | None, text: str) -> str:
    """A log line about the request ``trace``: `[request ID] text` (the text alone without one)."""
    return f"[request {trace}] {text}" if trace else text


def generate_tag(pid: int, number: int, trace: str | None) -> tuple:
    """The engine tag of a child's generate call: unique per call, its trace id last."""
    return ("generate", pid, number, trace)


def tag_trace(tag: Hashable | None) -> str | None:
    """The trace id in an engine tag made by generate_tag, else None."""
    return tag[3] if isinstance(tag, tuple) and len(tag) == 4 and tag[0] == "generate" else None


def engine_request_id(tag: Hashable | None, number: int) -> str:
    """An engine's own id for one request of a call (vLLM's request id, in vLLM's log lines): the trace id in it."""
    trace = tag_trace(tag)
    return f"tsserve-{trace}-{number}" if trace else f"tsserve-{number}"

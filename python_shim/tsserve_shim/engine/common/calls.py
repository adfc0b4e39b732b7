"""A generate call as both engines serve it (Call), and the calls an engine is serving with their cancels
(Calls): one cancel semantics for both. A cancel names a tag; it ends every live call submitted with that
tag, and one that comes before its call (a tag not seen yet) is kept and ends that call when it is
submitted. A cancel naming a call that has ended already is dropped: tags are one call's each (the
bridge's are), so it could only ever match a tag used again."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from ..contract import Outcome
from .deadline import deadline_list
from .rows import OnDelta, Row
from .submit import Done

log = logging.getLogger(__name__)

# Tags remembered (cancelled before their call came; ended): at most this many of each, the oldest forgotten first.
REMEMBERED_TAGS = 1024


@dataclass(eq=False)
class Call:
    """One generate call: its requests (GenerateRequests, or dicts until admission parses them), and what the
    engine knows of them so far."""

    requests: Sequence
    done: Done
    on_delta: OnDelta | None = None
    deadlines: list = field(default_factory=list)
    tag: Hashable | None = None  # what cancel() names (the bridge's generate tag)
    cancelled: bool = False
    arrived: float = field(default_factory=time.perf_counter)
    started: float = 0.0  # admitted: its compute_time runs from here
    outcomes: list = field(default_factory=list)  # one per request, None until answered
    prompts: dict[int, list[int]] = field(default_factory=dict)  # admitted request index -> prompt ids
    rows: list[Row] = field(default_factory=list)

    @classmethod
    def submitted(cls, requests: Sequence, done: Done, on_delta: OnDelta | None, deadlines, tag: Hashable | None):
        """A call as ``submit`` takes it (``deadlines``: one for all requests, or one per request)."""
        return cls(list(requests), done, on_delta, deadline_list(deadlines, len(requests)), tag)

    @property
    def finished(self) -> bool:
        return all(row.done for row in self.rows)

    @property
    def streamed(self) -> bool:
        return any(row.streamed_chars or row.streamed_tokens for row in self.rows)

    def deliver(self, outcomes: list[Outcome]) -> None:
        """Hand the caller its outcomes; a callback that raises must not stop the engine's loop."""
        try:
            self.done(outcomes)
        except Exception:
            log.exception("tsserve: delivering generate outcomes failed")


class Calls:
    """The live calls of an engine by tag, thread-safe: the caller's thread submits and cancels, the engine's
    loop ends calls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: list[Call] = []
        self._early: OrderedDict[Hashable, None] = OrderedDict()  # cancelled before their call came
        self._ended: OrderedDict[Hashable, None] = OrderedDict()

    def add(self, call: Call) -> None:
        """Register a call; it is cancelled already when a cancel for its tag came first."""
        with self._lock:
            if call.tag is not None and call.tag in self._early:
                del self._early[call.tag]
                call.cancelled = True
            self._live.append(call)

    def cancel(self, tag: Hashable) -> list[Call]:
        """Mark the live calls with ``tag`` cancelled and return them (none: the cancel waits for its call)."""
        with self._lock:
            hit = [call for call in self._live if call.tag == tag]
            for call in hit:
                call.cancelled = True
            if not hit and tag not in self._ended:
                _remember(self._early, tag)
            return hit

    def end(self, call: Call) -> None:
        """The call is answered: a cancel naming its tag from now on is dropped."""
        with self._lock:
            if call in self._live:
                self._live.remove(call)
            if call.tag is not None:
                _remember(self._ended, call.tag)


def _remember(tags: OrderedDict, tag: Hashable) -> None:
    tags[tag] = None
    tags.move_to_end(tag)
    while len(tags) > REMEMBERED_TAGS:
        tags.popitem(last=False)

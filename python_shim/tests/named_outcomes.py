"""Outcomes of several engine calls, each kept under a name, and a wait until all have arrived."""

from __future__ import annotations

import threading


class NamedOutcomes(dict):
    """``submit(..., outcomes.done("kept"))`` stores that call's outcomes under "kept"."""

    def __init__(self, expected: int):
        super().__init__()
        self._expected = expected
        self._all_in = threading.Event()

    def done(self, name: str):
        def record(outcomes):
            self[name] = outcomes
            if len(self) == self._expected:
                self._all_in.set()

        return record

    def wait(self, seconds: float) -> bool:
        return self._all_in.wait(seconds)

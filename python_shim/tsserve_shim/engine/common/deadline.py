"""A request's time limit as the decode loop checks it: when it passes, and the 504 message that names it;
and a generate call's deadlines, one per request (deadline_list)."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Deadline:
    """``at`` is a time.monotonic() instant; ``limit_s`` and ``name`` say which limit it is (for the message)."""

    at: float
    limit_s: float
    name: str

    @classmethod
    def after(cls, seconds: float, limit_s: float, name: str, *, now: float | None = None) -> Deadline:
        return cls((time.monotonic() if now is None else now) + seconds, limit_s, name)

    def passed(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) >= self.at

    def message(self, tokens: int, max_tokens: int) -> str:
        return (
            f"generation ran past the time limit of {self.limit_s:g} s ({self.name}) and was stopped after "
            f"{tokens} of {max_tokens} tokens; the other requests of its batch were not affected"
        )


Deadlines = "Deadline | Sequence[Deadline | None] | None"


def deadline_list(deadlines, count: int) -> list:
    """One Deadline (or None) per request, from one for all or a list."""
    if deadlines is None or isinstance(deadlines, Deadline) or not isinstance(deadlines, (list, tuple)):
        return [deadlines] * count
    return list(deadlines)

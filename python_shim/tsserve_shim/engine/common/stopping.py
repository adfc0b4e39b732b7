"""Stop sequences on decoded text, and what text is safe to stream before a stop could still match."""

from __future__ import annotations

from collections.abc import Iterable


class StopMatcher:
    """Finds the earliest stop sequence in a growing text.

    Matching is on text, not tokens, so stops that span token boundaries or
    begin with a space match however the tokenizer split them.
    """

    def __init__(self, stops: Iterable[str]):
        # Longest first so that, at one position, the longest stop is reported (the cut is the same).
        self.stops = sorted({s for s in stops if s}, key=len, reverse=True)
        self.longest = max((len(s) for s in self.stops), default=0)

    def __bool__(self) -> bool:
        return bool(self.stops)

    def find(self, text: str, new_from: int = 0) -> int | None:
        """Index where the earliest stop begins, considering only stops that end at or after ``new_from``.

        ``new_from`` is the length the text had when it was last checked: any
        stop lying wholly before it would have been found then.
        """
        if not self.stops:
            return None
        start = max(0, new_from - self.longest + 1)
        best: int | None = None
        for stop in self.stops:
            at = text.find(stop, start)
            if at != -1 and (best is None or at < best):
                best = at
        return best

    def holdback(self, text: str) -> int:
        """Length of the longest end of ``text`` that is the start of some stop (text that must not be streamed yet)."""
        if not self.stops:
            return 0
        limit = min(len(text), self.longest - 1)
        for size in range(limit, 0, -1):
            tail = text[-size:]
            if any(stop.startswith(tail) for stop in self.stops):
                return size
        return 0

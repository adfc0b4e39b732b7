"""A prefill in flight: the calls admitted together and their rows' prefill (ModelRunner.prefill), advanced
one chunk of prompt positions a step by the engine loop (core.py), so that the running rows get a token
between two chunks however long a prompt is. Rows that ran out of time or were cancelled are checked
between chunks: when none is left, the prefill is dropped there."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..common.rows import expire
from .batch import DecodeBatch, DecodeRow
from .model_runner import PrefillSteps
from .scheduler import ScheduledCall


@dataclass(eq=False)
class PrefillJob:
    calls: list[ScheduledCall]
    steps: PrefillSteps
    batch: DecodeBatch | None = None  # once done: the rows' decode batch (None: no row needs a token)
    done: bool = False
    chunks: int = field(default=0)  # forwards run so far

    @property
    def rows(self) -> list[DecodeRow]:
        return [row for call in self.calls for row in call.rows]

    def advance(self) -> bool:
        """Run the next chunk; True once the prefill is over (``batch`` holds its result)."""
        if self.chunks:
            expire(self.rows)
            if all(row.done for row in self.rows):
                self.drop()
                return True
        self.chunks += 1
        try:
            next(self.steps)
        except StopIteration as end:
            self.batch, self.done = end.value, True
        return self.done

    def drop(self) -> None:
        """Give up the prefill (its KV goes with it)."""
        self.steps.close()
        self.done = True

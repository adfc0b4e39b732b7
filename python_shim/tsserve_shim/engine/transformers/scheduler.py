"""Who runs this step: the engine loop (core.py) hands the scheduler the calls that arrived and what runs
already (plain numbers, no tensors); it answers with a SchedulerOutput: the calls admitted now (prefilled
together in one forward and joined to the running batch), those that wait for a later step, and those
that cannot fit the KV budget even alone.

Calls are admitted in arrival order while their rows fit ``max_num_seqs`` and the KV budget (kv_budget.py);
a call that does not fit waits, and the calls behind it wait too. A call whose batch's forward raised runs
again ``alone``: in a batch of its own, which nothing joins. Admitted rows are prefilled at most
``prefill_chunk_tokens`` prompt tokens a step (``prefill_window``), so the running rows decode between chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ...model.handler_config import DEFAULTS
from ..common.calls import Call
from .kv_budget import KvBudget, KvShape

DEFAULT_MAX_NUM_SEQS: int = DEFAULTS["max_num_seqs"]
DEFAULT_PREFILL_CHUNK_TOKENS: int = DEFAULTS["prefill_chunk_tokens"]
# Positions a row's prefill computes a step at least: a 64-row prefill stays within a 256-token chunk, and
# does not take a pass over the weights for each of its positions.
MIN_PREFILL_WINDOW = 4


@dataclass(eq=False)
class ScheduledCall(Call):
    """A call as this engine's loop keeps it: its token timings and whether it must run alone."""

    marks: dict = field(default_factory=dict)  # row index -> (tokens seen, when the last came): for the token timings
    alone: bool = False  # its batch's forward raised once: it runs again in a batch of its own

    def restart(self) -> None:
        """Forget its rows: it is admitted again from its prompt."""
        self.rows, self.outcomes, self.prompts, self.alone = [], [], {}, True


@dataclass(frozen=True)
class Running:
    """What the running batch holds, as the scheduler sees it (``joinable`` None: no batch runs)."""

    rows: int = 0
    shape: KvShape = field(default_factory=KvShape)
    joinable: bool | None = None


@dataclass
class SchedulerOutput:
    admitted: list[ScheduledCall] = field(default_factory=list)
    waiting: list[ScheduledCall] = field(default_factory=list)  # in arrival order
    unfit: list[ScheduledCall] = field(default_factory=list)  # too big for the KV budget alone (answered 507)
    shape: KvShape = field(default_factory=KvShape)  # the running rows' KV once the admitted ones join


class Scheduler:
    def __init__(self, max_num_seqs: int = DEFAULT_MAX_NUM_SEQS, prefill_chunk_tokens: int = DEFAULT_PREFILL_CHUNK_TOKENS) -> None:
        self.max_num_seqs = max_num_seqs  # rows decoded at once; calls beyond wait in arrival order
        self.prefill_chunk_tokens = prefill_chunk_tokens  # prompt tokens (rows x positions) one prefill forward takes
        self.kv_budget: KvBudget | None = None  # rows are admitted only while their KV fits (kv_budget.py)
        self._batch_alone = False  # the running batch holds one call that must not be joined

    def schedule(self, arrived: Sequence[ScheduledCall], running: Running, build: Callable[[ScheduledCall], bool]) -> SchedulerOutput:
        """Which of ``arrived`` join ``running`` now. ``build(call)`` makes a call's rows (tokenizing it) the
        first time it is considered; False: it could not be, and is answered already."""
        out = SchedulerOutput(shape=running.shape)
        if not arrived:
            return out
        if running.joinable is None:
            self._batch_alone = False
        elif self._batch_alone or not running.joinable:
            out.waiting = list(arrived)  # a batch that cannot be joined: the next one waits for it to end
            return out
        for position, call in enumerate(arrived):
            busy = bool(out.admitted) or running.rows > 0
            if out.waiting or (call.alone and busy):
                out.waiting.append(call)  # arrival order is kept
                continue
            if not call.rows and not build(call):
                continue
            self._place(call, out, running, busy)
            if call.alone and out.admitted and out.admitted[-1] is call:
                self._batch_alone = True
                out.waiting.extend(arrived[position + 1 :])
                break
        return out

    def _place(self, call: ScheduledCall, out: SchedulerOutput, running: Running, busy: bool) -> None:
        """Admit a built call, or let it wait (its turn comes when rows leave); one that cannot fit even alone is unfit."""
        room = self.max_num_seqs - running.rows - sum(len(c.rows) for c in out.admitted)
        if len(call.rows) > room and busy:
            out.waiting.append(call)  # a call wider than the whole limit still runs, alone
            return
        joined = out.shape.joined(KvShape.of_new_rows(call.rows))
        if not self.fits(joined):
            (out.waiting if busy else out.unfit).append(call)
            return
        out.shape = joined
        out.admitted.append(call)

    def prefill_window(self, rows: int) -> int:
        """Prompt positions a prefill of ``rows`` rows computes a step: the running rows decode between two."""
        return max(MIN_PREFILL_WINDOW, self.prefill_chunk_tokens // max(1, rows))

    def fits(self, shape: KvShape) -> bool:
        return self.kv_budget is None or self.kv_budget.fits(shape)

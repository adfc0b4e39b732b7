"""Continuous batching: an iteration-level scheduler over the Engine.

Generate calls are submitted from any thread; one scheduler thread runs the
decode loop. Before every step it admits the calls that arrived (tokenized,
prefilled together, joined to the running batch), so a new request starts
decoding at the next step instead of waiting for the batch to end; after every
step the rows that finished (or ran out of time) leave the batch, and a call
whose rows are all done is answered at once. Every per-row setting stays the
row's own (seed, stop, n, logprobs, echo, streaming), and a seeded row draws
the same numbers whatever shares its batch (sampling.py).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from .engine import Engine, OnDelta, _DecodeState, error_outcome, generation_failure
from .kv_batching import mergeable

log = logging.getLogger(__name__)

Done = Callable[[list], None]


@dataclass
class _Call:
    requests: Sequence[Mapping[str, Any]]
    on_delta: OnDelta | None
    deadlines: list
    done: Done
    outcomes: list = field(default_factory=list)
    prompts: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)
    prompt_lp: dict = field(default_factory=dict)
    started: float = 0.0

    @property
    def finished(self) -> bool:
        return all(row.done for row in self.rows)


class Scheduler:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._arrived: list[_Call] = []
        self._active: list[_Call] = []
        self._state: _DecodeState | None = None
        self._joinable = True
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="tsserve-scheduler", daemon=True)
        self._thread.start()

    def submit(self, requests: Sequence[Mapping[str, Any]], done: Done, on_delta: OnDelta | None = None, deadlines=None) -> None:
        """Generate ``requests``; ``done(outcomes)`` is called on the scheduler thread when all of them are answered."""
        call = _Call(requests, on_delta, Engine.deadline_list(deadlines, len(requests)), done)
        with self._wake:
            self._arrived.append(call)
            self._wake.notify()

    def generate(self, requests, on_delta: OnDelta | None = None, deadlines=None, timeout: float | None = None) -> list:
        """submit, and wait for the outcomes (for callers on another thread)."""
        finished = threading.Event()
        box: list = []

        def done(outcomes: list) -> None:
            box.append(outcomes)
            finished.set()

        self.submit(requests, done, on_delta, deadlines)
        if not finished.wait(timeout):
            raise TimeoutError("the scheduler did not answer in time")
        return box[0]

    @property
    def running_rows(self) -> int:
        state = self._state
        return len(state.rows) if state is not None else 0

    # ------------------------------------------------------------ the loop

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._arrived and self._state is None:
                    self._wake.wait()
                arrived, self._arrived = self._arrived, []
            try:
                with torch.inference_mode():
                    self._iterate(arrived)
            except Exception as error:  # noqa: BLE001 - fail what was running, keep serving
                self._fail_all(error)

    def _iterate(self, arrived: list[_Call]) -> None:
        waiting = [call for call in arrived if not self._admit(call)]
        if waiting:
            with self._wake:
                self._arrived[:0] = waiting  # a batch that cannot be joined waits for the running one to end
        state = self._state
        if state is None:
            self._answer_finished()
            return
        self.engine.step(state)
        self.engine._expire(state.rows)
        alive = state.prune()
        self._answer_finished()
        if alive:
            state.forward(self.engine.model)
        else:
            self._state = None

    def _admit(self, call: _Call) -> bool:
        """Tokenize and prefill a call, then join its rows to the running batch; False when it must wait
        (a model whose cache cannot be joined runs one batch at a time)."""
        if self._state is not None and not self._joinable:
            return False
        self._active.append(call)  # from here on, a failure answers it too
        call.started = time.perf_counter()
        call.outcomes, call.prompts = self.engine.admissible(call.requests)
        call.rows = self.engine._make_rows(call.requests, call.prompts, call.deadlines, call.on_delta)
        state, call.prompt_lp = self.engine.start(call.requests, call.rows)
        if state is None:
            return True
        if self._state is None:
            self._state = state
            self._joinable = mergeable(state.cache)
        else:
            self._state.join(state)
        return True

    def _answer_finished(self) -> None:
        still: list[_Call] = []
        for call in self._active:
            if not call.finished:
                still.append(call)
                continue
            elapsed = time.perf_counter() - call.started
            for index, outcome in self.engine.outcomes(call.prompts, call.rows, call.prompt_lp, elapsed).items():
                call.outcomes[index] = outcome
            self._deliver(call, [o if o is not None else error_outcome(500, "no outcome") for o in call.outcomes])
        self._active = still

    def _fail_all(self, error: BaseException) -> None:
        calls, self._active, self._state = self._active, [], None
        for call in calls:
            failure = generation_failure(error, len(call.rows))
            outcomes = call.outcomes or [None] * len(call.requests)
            self._deliver(call, [o if o is not None else failure for o in outcomes])

    @staticmethod
    def _deliver(call: _Call, outcomes: list) -> None:
        try:
            call.done(outcomes)
        except Exception:  # noqa: BLE001 - a caller's callback must not stop the loop
            log.exception("tsserve: delivering generate outcomes failed")


"""The engine's one decode loop: an iteration-level scheduler over a ModelRunner.

Generate calls are submitted from any thread. Every step: the calls that arrived
are admitted (tokenized, prefilled together in one forward, joined to the running
batch), so a new request starts decoding at the next step instead of waiting for
the batch to end; every row takes one token; the rows that finished, ran out of
time or were cancelled leave the batch; a call whose rows are all done is answered
at once. Static batching (several requests in one call, or several calls arriving
together) is the same thing: rows admitted at the same step. Every per-row setting
stays the row's own (seed, stop, n, logprobs, echo, streaming), and a seeded row
draws the same numbers whatever shares its batch (sampling.py).

The loop runs on its own thread (``start``) when serving, or in the caller's
thread (``run_until_idle``) for a synchronous ``generate``.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Hashable, Mapping, Sequence

import torch

from ...model.handler_config import DEFAULTS
from ..common import output
from ..common.deadline import deadline_list
from ..common.rows import CANCELLED, OnDelta, Row, build_rows, expire
from ..common.submit import Done, wait_for_outcomes
from ..common.stats import (
    E2E_REQUEST_LATENCY, INTER_TOKEN_LATENCY, KV_CACHE_USAGE, REQUEST_QUEUE_TIME, REQUESTS_RUNNING, REQUESTS_WAITING,
    TIME_TO_FIRST_TOKEN, EngineStats,
)
from .batch import DecodeBatch
from .kv_budget import KvBudget, KvBudgetError, KvShape
from .model_runner import ModelRunner

log = logging.getLogger(__name__)

@dataclass
class Call:
    """One generate call: its requests, and what the loop knows of them so far."""

    requests: Sequence[Mapping[str, Any]]
    on_delta: OnDelta | None
    deadlines: list
    done: Done
    tag: Hashable | None = None  # what cancel() names (the worker's batch id)
    outcomes: list = field(default_factory=list)
    prompts: dict = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    started: float = 0.0
    arrived: float = field(default_factory=time.perf_counter)
    marks: dict = field(default_factory=dict)  # row index -> (tokens seen, when the last came): for the token timings
    alone: bool = False  # its batch's forward raised once: it runs again in a batch of its own

    @property
    def finished(self) -> bool:
        return all(row.done for row in self.rows)

    @property
    def streamed(self) -> bool:
        return any(row.streamed_chars or row.streamed_tokens for row in self.rows)

    def restart(self) -> None:
        """Forget its rows: it is admitted again from its prompt."""
        self.rows, self.outcomes, self.prompts, self.alone = [], [], {}, True


DEFAULT_MAX_NUM_SEQS: int = DEFAULTS["max_num_seqs"]


class Scheduler:
    def __init__(self, runner: ModelRunner, max_num_seqs: int = DEFAULT_MAX_NUM_SEQS) -> None:
        self.runner = runner
        self.max_num_seqs = max_num_seqs  # rows decoded at once; calls beyond wait in arrival order
        self._wake = threading.Condition()
        self._arrived: list[Call] = []
        self._cancelled: set = set()
        self._active: list[Call] = []
        self._batch: DecodeBatch | None = None
        self._batch_alone = False  # the running batch holds one call that must not be joined
        self.kv_budget: KvBudget | None = None  # rows are admitted only while their KV fits (kv_budget.py)
        self.stats = EngineStats()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ the API

    def submit(self, requests: Sequence[Mapping[str, Any]], done: Done, on_delta: OnDelta | None = None, deadlines=None, tag: Hashable | None = None) -> None:
        """Generate ``requests``; ``done(outcomes)`` is called on the loop's thread when all of them are answered."""
        call = Call(requests, on_delta, deadline_list(deadlines, len(requests)), done, tag)
        with self._wake:
            self._arrived.append(call)
            self._wake.notify()

    def cancel(self, tag: Hashable) -> None:
        """End the calls submitted with ``tag``: their rows leave the batch at the next step."""
        with self._wake:
            self._cancelled.add(tag)
            self._wake.notify()

    def generate(self, requests, on_delta: OnDelta | None = None, deadlines=None, timeout: float | None = None) -> list:
        """submit and wait for the outcomes: on the loop's thread when it runs, else in this one."""
        return wait_for_outcomes(
            lambda done: self.submit(requests, done, on_delta, deadlines), timeout,
            drive=self.run_until_idle if self._thread is None else None, who="the scheduler",
        )

    def start(self) -> "Scheduler":
        """Run the loop on its own thread (for serving: submit from any thread)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="tsserve-scheduler", daemon=True)
            self._thread.start()
        return self

    @property
    def running_rows(self) -> int:
        batch = self._batch
        return len(batch.rows) if batch is not None else 0

    # ------------------------------------------------------------ the loop

    def _has_work(self) -> bool:
        return bool(self._arrived or self._cancelled or self._batch is not None)

    def _serve(self) -> None:
        while True:
            with self._wake:
                while not self._has_work():
                    self._wake.wait()
            self.step()

    def run_until_idle(self) -> None:
        while self._has_work():
            self.step()

    def step(self) -> None:
        """One iteration: cancels, admissions, one token for every row, answers, the next forward."""
        with self._wake:
            arrived, self._arrived = self._arrived, []
            cancelled, self._cancelled = self._cancelled, set()
        try:
            with torch.inference_mode():
                self._iterate(arrived, cancelled)
        except Exception as error:  # noqa: BLE001 - fail what was running, keep serving
            self._fail_active(error)
        self._record_load()

    def _iterate(self, arrived: list[Call], cancelled: set) -> None:
        if cancelled:
            self._cancel(arrived, cancelled)
        waiting = self._admit(arrived)
        self._fit_prefix_cache(KvShape.of_batch(self._batch))
        if waiting:
            self._wait(waiting)  # a batch that cannot be joined waits for the running one to end
        try:
            self._advance()
        except Exception as error:  # noqa: BLE001 - the whole batch's pass raised: each call runs again alone
            self._retry_alone(error)

    def _wait(self, calls: list[Call]) -> None:
        with self._wake:
            self._arrived[:0] = calls

    def _advance(self) -> None:
        """One token for every row, the answers of the calls that finished, the next forward."""
        batch = self._batch
        if batch is not None:
            if batch.prune():
                self.runner.decode_step(batch)
                self._record_tokens()
                expire(batch.rows)
                self.runner.keep_finished(batch)
            if not batch.prune():
                self._batch = batch = None
        self._answer_finished()
        if batch is not None:
            self._forward(batch)

    def _retry_alone(self, error: BaseException) -> None:
        """A pass over the whole batch raised, and which call it was for is unknown: every call runs again
        from its prompt, each in a batch of its own; one that fails alone (or has streamed text already) is answered with the error."""
        calls, self._batch, self._active = list(self._active), None, []
        retried = []
        for call in calls:
            if call.alone or call.streamed:
                self._fail(call, error)
            else:
                call.restart()
                retried.append(call)
        if retried:
            log.warning("tsserve: a batch of %d calls failed (%s: %s); running each alone", len(calls), type(error).__name__, error)
            self._wait(retried)

    def _cancel(self, arrived: list[Call], tags: set) -> None:
        for call in self._active + arrived:
            if call.tag in tags:
                for row in call.rows:
                    if not row.done:
                        row.finish_reason = CANCELLED
        for call in [c for c in arrived if c.tag in tags]:
            arrived.remove(call)
            self._deliver(call, [output.error_outcome(499, "the request was cancelled before its generation started")] * len(call.requests))

    def _admit(self, arrived: list[Call]) -> list[Call]:
        """Tokenize and prefill the calls that arrived (one forward for all), and join their rows to
        the running batch. Returns the calls that must wait (a model whose cache cannot be joined
        runs one batch at a time)."""
        if not arrived:
            return []
        if self._batch is None:
            self._batch_alone = False
        elif self._batch_alone or not self._batch.joinable:
            return arrived
        room = self.max_num_seqs - self.running_rows
        kv = KvShape.of_batch(self._batch)
        admitted: list[Call] = []
        waiting: list[Call] = []
        for call in arrived:
            if waiting or (call.alone and (admitted or self.running_rows)):
                waiting.append(call)  # arrival order is kept
                continue
            if not call.rows and not self._build(call):
                continue
            if len(call.rows) > room and (admitted or self.running_rows):
                waiting.append(call)  # a call wider than the whole limit still runs, alone
                continue
            if not self._kv_fits(kv.joined(KvShape.of_new_rows(call.rows))):
                if admitted or self.running_rows:
                    waiting.append(call)  # its turn comes when rows leave
                else:
                    self._fail(call, KvBudgetError(f"out of memory for KV: {self.kv_budget.describe(KvShape.of_new_rows(call.rows))}"))
                continue
            kv = kv.joined(KvShape.of_new_rows(call.rows))
            admitted.append(call)
            room -= len(call.rows)
            if call.alone:
                self._batch_alone = True
                waiting.extend(arrived[arrived.index(call) + 1:])
                break
        self._active += admitted
        if admitted:
            self._fit_prefix_cache(kv)
            now = time.perf_counter()
            for call in admitted:
                self.stats.observe(REQUEST_QUEUE_TIME, *[now - call.arrived] * len(call.prompts))  # its admitted requests
        self._prefill(admitted)
        return waiting

    def _kv_fits(self, shape: KvShape) -> bool:
        return self.kv_budget is None or self.kv_budget.fits(shape)

    def _fit_prefix_cache(self, rows: KvShape) -> None:
        """The prefix cache holds what ``rows`` (the running ones, or those about to be) leave of the KV budget."""
        cache = self.runner.prefix_cache
        if self.kv_budget is not None and cache is not None:
            cache.shrink(self.kv_budget.total_bytes - self.kv_budget.need(rows))

    def _forward(self, batch: DecodeBatch) -> None:
        """The next forward; when it runs out of memory, the newest call fails and the rest go on."""
        while True:
            try:
                batch.forward(self.runner.model)
                return
            except Exception as error:  # noqa: BLE001
                if not (output.is_oom(error) and batch.retryable and self._active):
                    raise
                if self._drop_prefix_cache():
                    continue
                newest = self._active[-1]
                log.warning("tsserve: out of memory in a decode step of %d rows; failing the newest call (%d rows)", len(batch.rows), len(newest.rows))
                self._fail(newest, error)
                if not batch.prune():
                    self._batch = None
                    return

    def _drop_prefix_cache(self) -> bool:
        """Give up the prefix cache's KV (until the next step sizes it again); False when it held none."""
        cache = self.runner.prefix_cache
        if cache is None or not cache.nbytes:
            return False
        log.warning("tsserve: out of memory in a decode step; dropping the prefix cache's %.1f MiB", cache.nbytes / 2**20)
        cache.shrink(0)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return True

    def _build(self, call: Call) -> bool:
        """Tokenize a call and make its rows; a call whose rows cannot be made is answered with the error, alone."""
        try:
            call.started = time.perf_counter()
            call.outcomes, call.prompts = self.runner.admissible(call.requests)
            call.rows = build_rows(self.runner.tokenizer, call.requests, call.prompts, call.deadlines, call.on_delta)
        except Exception as error:  # noqa: BLE001
            call.rows = []
            self._fail(call, error)
            return False
        return True

    def _prefill(self, calls: list[Call]) -> None:
        """One forward for every call; when it fails, each call alone, so that only the one that fails is answered with its error."""
        try:
            self._join(self.runner.prefill([row for call in calls for row in call.rows]))
        except Exception as error:  # noqa: BLE001
            if len(calls) == 1:
                self._fail(calls[0], error)
                return
            for call in calls:
                self._prefill([call])

    def _join(self, batch: DecodeBatch | None) -> None:
        if batch is None:
            return
        if self._batch is None:
            self._batch = batch
        else:
            self._batch.join(batch)

    def _answer_finished(self) -> None:
        still: list[Call] = []
        for call in self._active:
            if not call.finished:
                still.append(call)
                continue
            try:
                elapsed = time.perf_counter() - call.started
                for index, outcome in output.outcomes(call.prompts, call.rows, elapsed).items():
                    call.outcomes[index] = outcome
            except Exception as error:  # noqa: BLE001 - one call's answer failed: that call alone
                self._fail(call, error)
                continue
            self.stats.observe(E2E_REQUEST_LATENCY, *[time.perf_counter() - call.arrived] * len(call.prompts))
            self._deliver(call, [o if o is not None else output.error_outcome(500, "no outcome") for o in call.outcomes])
        self._active = still

    # ------------------------------------------------------------ what it measures (common/stats.py)

    def _record_tokens(self) -> None:
        """Time to first token and inter-token latency of each row that got a token in this step."""
        now = time.perf_counter()
        for call in self._active:
            for index, row in enumerate(call.rows):
                seen, last = call.marks.get(index, (0, call.arrived))
                produced = len(row.chosen_ids)
                if produced > seen:
                    self.stats.observe(TIME_TO_FIRST_TOKEN if seen == 0 else INTER_TOKEN_LATENCY, now - last)
                    call.marks[index] = (produced, now)

    def _record_load(self) -> None:
        with self._wake:
            waiting = sum(len(call.requests) for call in self._arrived)
        self.stats.set(REQUESTS_RUNNING, self.running_rows)
        self.stats.set(REQUESTS_WAITING, waiting)
        budget, batch = self.kv_budget, self._batch
        used = budget.need(KvShape.of_batch(batch)) / budget.total_bytes if budget is not None and budget.total_bytes else 0.0
        self.stats.set(KV_CACHE_USAGE, min(1.0, used))

    def _fail(self, call: Call, error: BaseException) -> None:
        """Answer a call whose rows cannot go on; its rows leave the batch."""
        for row in call.rows:
            row.finish_reason = row.finish_reason or CANCELLED
        if call in self._active:
            self._active.remove(call)
        failure = output.generation_failure(error, len(call.rows))
        self._deliver(call, [o if o is not None else failure for o in (call.outcomes or [None] * len(call.requests))])

    def _fail_active(self, error: BaseException) -> None:
        calls, self._batch = list(self._active), None
        for call in calls:
            self._fail(call, error)

    @staticmethod
    def _deliver(call: Call, outcomes: list) -> None:
        try:
            call.done(outcomes)
        except Exception:  # noqa: BLE001 - a caller's callback must not stop the loop
            log.exception("tsserve: delivering generate outcomes failed")

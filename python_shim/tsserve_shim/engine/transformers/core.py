"""The engine's one decode loop (EngineCore): each step the scheduler says which calls are admitted
(scheduler.py), the runner prefills them and decodes every row one token (model_runner.py), the output
processor takes those tokens into the rows (common/output.py), and a call whose rows are all done is
answered at once. A long prompt is prefilled a chunk a step (prefill.py), the running rows decoding between chunks.

Generate calls are submitted from any thread. A new request starts decoding at the next step instead of
waiting for the batch to end; rows that finished, ran out of time or were cancelled leave the batch.
Static batching (several requests in one call, or several calls arriving together) is the same thing:
rows admitted at the same step. Every per-row setting stays the row's own (seed, stop, n, logprobs, echo,
streaming), and a seeded row draws the same numbers whatever shares its batch (sampling.py).

The loop runs on its own thread (``start``) when serving, or in the caller's thread (``run_until_idle``)
for a synchronous ``generate``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable

import torch

from ..common.calls import Calls
from ..common.output import OutputProcessor, generation_failure, is_oom
from ..common.prompts import PromptTokenizer
from ..common.rows import CANCELLED, OnDelta, build_rows, expire
from ..common.stats import (
    E2E_REQUEST_LATENCY,
    INTER_TOKEN_LATENCY,
    KV_CACHE_USAGE,
    REQUEST_QUEUE_TIME,
    REQUESTS_RUNNING,
    REQUESTS_WAITING,
    TIME_TO_FIRST_TOKEN,
    EngineStats,
)
from ..common.submit import Done, wait_for_outcomes
from ..contract import Outcome, Requests, error_outcome, generate_requests, tag_trace, tagged
from .batch import DecodeBatch, DecodeRow
from .kv_budget import KvBudgetError, KvShape
from .model_runner import ModelRunner
from .prefill import PrefillJob
from .scheduler import Running, ScheduledCall, Scheduler

log = logging.getLogger(__name__)


class EngineCore:
    def __init__(self, runner: ModelRunner, text: PromptTokenizer, scheduler: Scheduler | None = None) -> None:
        self.runner = runner
        self.text = text  # admission: tokenizing and refusing requests
        self.processor = OutputProcessor(text)
        self.scheduler = scheduler or Scheduler()
        self.calls = Calls()
        self.stats = EngineStats()
        self._wake = threading.Condition()
        self._arrived: list[ScheduledCall] = []
        self._active: list[ScheduledCall] = []
        self._batch: DecodeBatch | None = None
        self._prefills: list[PrefillJob] = []  # admitted calls whose prompts are still being prefilled, a chunk a step
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ the API

    def submit(self, requests: Requests, done: Done, on_delta: OnDelta | None = None, deadlines=None, tag: Hashable | None = None) -> None:
        """Generate ``requests``; ``done(outcomes)`` is called on the loop's thread when all of them are answered."""
        call = ScheduledCall.submitted(requests, done, on_delta, deadlines, tag)
        self.calls.add(call)
        with self._wake:
            self._arrived.append(call)
            self._wake.notify()

    def cancel(self, tag: Hashable) -> None:
        """End the calls submitted with ``tag`` (common/calls.py): their rows leave the batch at the next step."""
        if self.calls.cancel(tag):
            with self._wake:
                self._wake.notify()

    def generate(self, requests: Requests, on_delta: OnDelta | None = None, deadlines=None, timeout: float | None = None) -> list[Outcome]:
        """submit and wait for the outcomes: on the loop's thread when it runs, else in this one."""
        return wait_for_outcomes(
            lambda done: self.submit(requests, done, on_delta, deadlines),
            timeout,
            drive=self.run_until_idle if self._thread is None else None,
            who="the scheduler",
        )

    def start(self) -> EngineCore:
        """Run the loop on its own thread (for serving: submit from any thread)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="tsserve-scheduler", daemon=True)
            self._thread.start()
        return self

    @property
    def running_rows(self) -> int:
        batch = self._batch
        return (len(batch.rows) if batch is not None else 0) + len(self._prefilling_rows())

    # ------------------------------------------------------------ the loop

    def _has_work(self) -> bool:
        return bool(self._arrived or self._batch is not None or self._prefills)

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
        try:
            with torch.inference_mode():
                self._iterate(arrived)
        except Exception as error:
            self._fail_active(error)
        self._record_load()

    def _iterate(self, arrived: list[ScheduledCall]) -> None:
        arrived = self._cancel(arrived)
        for job in list(self._prefills):
            self._advance_prefill(job)
        plan = self.scheduler.schedule(arrived, self._running(), self._build)
        for call in plan.unfit:
            self._fail(call, KvBudgetError(f"out of memory for KV: {self.scheduler.kv_budget.describe(KvShape.of_new_rows(call.rows))}"))
        if plan.admitted:
            self._admit(plan.admitted, plan.shape)
        self._fit_prefix_cache(self._running_shape())
        if plan.waiting:
            self._wait(plan.waiting)  # a batch that cannot be joined waits for the running one to end
        try:
            self._advance()
        except Exception as error:
            self._retry_alone(error)

    def _running(self) -> Running:
        """The decode batch and the rows being prefilled (which join it when their prefill ends)."""
        batch = self._batch
        if batch is None and not self._prefills:
            return Running()
        joinable = batch.joinable if batch is not None else self.runner.kv_joinable
        return Running(self.running_rows, self._running_shape(), joinable)

    def _running_shape(self) -> KvShape:
        return KvShape.of_batch(self._batch).joined(KvShape.of_new_rows(r for r in self._prefilling_rows() if not r.done))

    def _prefilling_rows(self) -> list[DecodeRow]:
        return [row for job in self._prefills for row in job.rows]

    def _wait(self, calls: list[ScheduledCall]) -> None:
        with self._wake:
            self._arrived[:0] = calls

    def _advance(self) -> None:
        """One token for every row, the answers of the calls that finished, the next forward."""
        batch = self._batch
        if batch is not None:
            if batch.prune():
                self.processor.process(self.runner.decode_step(batch, self.processor.eos_ids))
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
        self._drop_prefills()
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

    def _cancel(self, arrived: list[ScheduledCall]) -> list[ScheduledCall]:
        """End the rows of the cancelled calls; answer those not admitted yet. Returns the arrived calls left."""
        for call in self._active + arrived:
            if call.cancelled:
                for row in call.rows:
                    if not row.done:
                        row.finish_reason = CANCELLED
        for call in [c for c in arrived if c.cancelled]:
            self._answer(call, [error_outcome(499, "the request was cancelled before its generation started")] * len(call.requests))
        return [call for call in arrived if not call.cancelled]

    # ------------------------------------------------------------ admission

    def _build(self, call: ScheduledCall) -> bool:
        """Parse and tokenize a call and make its rows; a call whose rows cannot be made is answered with the error, alone."""
        try:
            call.started = time.perf_counter()
            call.requests = generate_requests(call.requests)
            call.outcomes, call.prompts = self.text.admissible(call.requests)
            call.rows = build_rows(self.text.tokenizer, call.requests, call.prompts, call.deadlines, call.on_delta, DecodeRow)
        except Exception as error:
            call.rows = []
            self._fail(call, error)
            return False
        return True

    def _admit(self, calls: list[ScheduledCall], shape: KvShape) -> None:
        self._active += calls
        self._fit_prefix_cache(shape)
        now = time.perf_counter()
        for call in calls:
            self.stats.observe(REQUEST_QUEUE_TIME, *[now - call.arrived] * len(call.prompts))  # its admitted requests
        self._prefill(calls)

    def _prefill(self, calls: list[ScheduledCall]) -> None:
        """Start the calls' prefill (one forward a chunk for all of them) and run its first chunk."""
        rows = [row for call in calls for row in call.rows]
        job = PrefillJob(calls, self.runner.prefill(rows, self.scheduler.prefill_window(len(rows))))
        self._prefills.append(job)
        self._advance_prefill(job)

    def _advance_prefill(self, job: PrefillJob) -> None:
        """The prefill's next chunk; its batch joins the running one when it ends. When it fails, each call
        starts again alone, so that only the one that fails is answered with its error."""
        try:
            if not job.advance():
                return
        except Exception as error:
            job.drop()
            self._prefills.remove(job)
            if len(job.calls) == 1:
                self._fail(job.calls[0], error)
                return
            for call in job.calls:
                self._prefill([call])
            return
        self._prefills.remove(job)
        self._join(job.batch)

    def _drop_prefills(self) -> None:
        for job in self._prefills:
            job.drop()
        self._prefills = []

    def _join(self, batch: DecodeBatch | None) -> None:
        if batch is None:
            return
        if self._batch is None:
            self._batch = batch
        else:
            self._batch.join(batch)

    def _fit_prefix_cache(self, rows: KvShape) -> None:
        """The prefix cache holds what ``rows`` (the running ones, or those about to be) leave of the KV budget."""
        cache, budget = self.runner.prefix_cache, self.scheduler.kv_budget
        if budget is not None and cache is not None:
            cache.shrink(budget.total_bytes - budget.need(rows))

    # ------------------------------------------------------------ the next forward

    def _forward(self, batch: DecodeBatch) -> None:
        """The next forward; when it runs out of memory, the newest call fails and the rest go on."""
        while True:
            try:
                self.runner.forward(batch)
                return
            except Exception as error:
                if not (is_oom(error) and batch.retryable and self._active):
                    raise
                if self.runner.drop_prefix_cache():
                    continue
                newest = self._active[-1]
                log.warning(
                    "tsserve: out of memory in a decode step of %d rows; failing the newest call (%d rows)",
                    len(batch.rows),
                    len(newest.rows),
                )
                self._fail(newest, error)
                if not batch.prune():
                    self._batch = None
                    return

    # ------------------------------------------------------------ answers

    def _answer_finished(self) -> None:
        still: list[ScheduledCall] = []
        for call in self._active:
            if not call.finished:
                still.append(call)
                continue
            try:
                elapsed = time.perf_counter() - call.started
                for index, outcome in self.processor.outcomes(call.prompts, call.rows, elapsed).items():
                    call.outcomes[index] = outcome
            except Exception as error:
                self._fail(call, error)
                continue
            self.stats.observe(E2E_REQUEST_LATENCY, *[time.perf_counter() - call.arrived] * len(call.prompts))
            self._answer(call, [o if o is not None else error_outcome(500, "no outcome") for o in call.outcomes])
        self._active = still

    def _fail(self, call: ScheduledCall, error: BaseException) -> None:
        """Answer a call whose rows cannot go on; its rows leave the batch."""
        log.warning("tsserve: %s", tagged(tag_trace(call.tag), f"a generate call failed in the engine: {type(error).__name__}: {error}"))
        for row in call.rows:
            row.finish_reason = row.finish_reason or CANCELLED
        if call in self._active:
            self._active.remove(call)
        failure = generation_failure(error, len(call.rows))
        self._answer(call, [o if o is not None else failure for o in (call.outcomes or [None] * len(call.requests))])

    def _fail_active(self, error: BaseException) -> None:
        calls, self._batch = list(self._active), None
        self._drop_prefills()
        for call in calls:
            self._fail(call, error)

    def _answer(self, call: ScheduledCall, outcomes: list[Outcome]) -> None:
        self.calls.end(call)
        call.deliver(outcomes)

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
        budget = self.scheduler.kv_budget
        used = budget.need(self._running_shape()) / budget.total_bytes if budget is not None and budget.total_bytes else 0.0
        self.stats.set(KV_CACHE_USAGE, min(1.0, used))

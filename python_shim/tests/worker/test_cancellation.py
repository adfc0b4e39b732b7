"""Cancellation across the bridge (issue 28): a request that runs out of time cancels its Node `handle`
(the stages see the AbortSignal abort, no further stage runs, the generation it opened is cancelled,
and a generate it asks for afterwards is refused at once, by Node and by the shim), and the engine
drops the rows of the generate calls that handle opened. Real shim, real bundle, tiny model, under
asyncCommunication as TorchServe's async worker drives it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

import orjson
import pytest
from bundles import ROOT
from shim_harness import make_context, open_shim

DEADLINE_S = 2.0


@pytest.fixture(scope="module")
def shim(tmp_path_factory, tiny_model_dir):
    probe = os.path.join(ROOT, "test", "fixtures", "handlers", "cancel-probe-handler.ts")
    opened = open_shim(
        tmp_path_factory, tiny_model_dir, batch_size=1, handler_file=probe, async_communication=True, handle_timeout_s=DEADLINE_S
    )
    yield opened
    opened[0].shutdown()


async def ask(shim, body: dict):
    handler, model_dir, config = shim
    context = make_context(model_dir, config, 1)
    replies = await handler.handle([{"body": orjson.dumps(body)}], context)
    return context.get_response_status(0)[0] or 200, orjson.loads(replies[0])


@contextlib.contextmanager
def engine_calls_recorded(handler):
    """Yields the tags the engine is submitted and told to cancel, while the calls still go through."""
    submitted: list = []
    cancelled: list = []
    engine_submit, engine_cancel = handler.engine.submit, handler.engine.cancel
    handler.engine.submit = lambda requests, done, on_delta=None, deadlines=None, tag=None: (
        submitted.append(tag),
        engine_submit(requests, done, on_delta, deadlines, tag),
    )
    handler.engine.cancel = lambda tag: (cancelled.append(tag), engine_cancel(tag))
    try:
        yield submitted, cancelled
    finally:
        handler.engine.submit, handler.engine.cancel = engine_submit, engine_cancel


def report_once_later_settled(shim, probe_id: str, within_s: float, every_s: float):
    """Asks for the probe's record until its later generate has settled (or time runs out): (status, record)."""
    deadline = time.monotonic() + within_s
    status, record = None, None
    while time.monotonic() < deadline:
        status, record = asyncio.run(ask(shim, {"action": "report", "id": probe_id}))
        if record and record["later"] is not None:
            break
        time.sleep(every_s)
    return status, record


def test_a_timed_out_request_s_stages_see_the_abort_and_its_later_generate_is_refused(shim):
    handler = shim[0]
    with engine_calls_recorded(handler) as (submitted, _):
        started = time.monotonic()
        status, body = asyncio.run(ask(shim, {"action": "wait", "id": "t1", "max_tokens": 500, "rows": 32}))
        elapsed = time.monotonic() - started
        assert status == 504 and "did not answer within 2 s" in body["error"]["message"]
        assert elapsed < DEADLINE_S + 3
        status, record = report_once_later_settled(shim, "t1", within_s=10, every_s=0.1)
    assert status == 200 and record["aborted"] is True, record
    assert "did not answer within 2 s" in record["reason"]
    assert record["waited_ms"] < (DEADLINE_S + 1) * 1000  # woken by the abort, not by its own 30 s timer
    # The generation it opened (32 rows of 500 tokens: over 5 s of work on an idle CPU, where one row took 1.2 s,
    # under the 2 s deadline) ended with the request: its rows stopped at the generation deadline (a margin
    # before the 504) or it was cancelled with the handle, whichever came first; never a full answer.
    assert record["opened"].startswith("rejected: generate cancelled") or '"status":504' in record["opened"], record
    assert record["later"].startswith("rejected: generate not sent"), record  # refused at once, by Node
    assert record["postprocess"] is False  # no stage after the abort
    assert len(submitted) == 1  # the later generate never reached the engine
    # A generate that reaches the shim for that request anyway (an older bundle, a raw peer) is refused at once.
    batch_id = max(handler._ended)
    status, message = handler._generate_refusal(batch_id, [{}])
    assert status == 504 and "the request it serves is over" in message and "did not answer within 2 s" in message


def test_a_generate_for_a_request_already_answered_is_refused_not_given_a_fresh_deadline(shim):
    handler = shim[0]
    sent: list = []
    request = handler.bridge.request
    handler.bridge.request = lambda method, params, on_answer: (sent.append(params.get("batch_id")), request(method, params, on_answer))[1]
    try:
        status, _ = asyncio.run(ask(shim, {"action": "report", "id": "t1"}))
    finally:
        handler.bridge.request = request
    assert status == 200 and sent[-1] is not None
    status, message = handler._generate_refusal(sent[-1], [{}])
    assert status == 409 and "the request it serves is over (it was answered already)" in message
    assert handler._generate_refusal(None, [{"prompt": "x", "max_tokens": 1, "num_sequences": 1}]) is None  # initialize's calls: no request


def test_a_request_whose_client_went_away_cancels_its_handle_and_the_engine_drops_its_rows(shim):
    """TorchServe cancels nothing itself; whoever awaits handle's answer may (a task cancelled when its client is gone)."""
    handler = shim[0]

    async def gone(submitted):
        task = asyncio.create_task(ask(shim, {"action": "wait", "id": "t2", "max_tokens": 500}))
        while not submitted:
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with engine_calls_recorded(handler) as (submitted, cancelled):
        asyncio.run(gone(submitted))
        _, record = report_once_later_settled(shim, "t2", within_s=10, every_s=0.05)
    assert record["aborted"] is True and "its client went away" in record["reason"], record
    assert record["opened"].startswith("rejected: generate cancelled"), record
    assert record["later"].startswith("rejected: generate not sent"), record
    assert record["postprocess"] is False
    assert submitted[0] in cancelled  # the engine was told to drop the opened generation's rows
    deadline = time.monotonic() + 5
    while handler.engine.core.running_rows and time.monotonic() < deadline:
        time.sleep(0.02)
    assert handler.engine.core.running_rows == 0

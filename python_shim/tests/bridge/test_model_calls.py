"""Serving the engine to Node (model_calls.ModelCalls), with a recording engine and a recording channel:
refusals before any work, long prompts tokenized on the tokenizer thread before the engine gets them,
cancellation by Node, by the end of a handle and by the child's end, and big text calls off the thread."""

from __future__ import annotations

import collections
import dataclasses
import threading
import time

import pytest
from protocol_values import make_request

from tsserve_shim.bridge import protocol
from tsserve_shim.bridge.errors import INVALID_PARAMS, RpcError
from tsserve_shim.bridge.model_calls import OFF_THREAD_IDS, OFF_THREAD_TEXT_BYTES, ModelCalls
from tsserve_shim.bridge.rpc import Deferred
from tsserve_shim.engine.contract import Malformed, generate_requests, tag_trace


class RecordingEngine:
    """The engine contract's calls, recorded; generate calls stay open until finish() (or answer at once)."""

    def __init__(self, answer_at_once: bool = False) -> None:
        self.answer_at_once = answer_at_once
        self.submitted: list = []
        self.cancelled: list = []
        self.pretokenized: list = []
        self.tokenizing = threading.Event()  # set while pretokenize runs; it waits for release
        self.release = threading.Event()
        self.release.set()

    def submit(self, requests, done, on_delta, deadlines, tag):
        self.submitted.append((requests, tag, deadlines))
        if on_delta is not None:
            on_delta(0, 0, "hi", None)
        if self.answer_at_once:
            done([{"ok": True, "texts": ["hi"]}] * len(requests))

    def cancel(self, tag):
        self.cancelled.append(tag)

    def pretokenize(self, requests):
        self.tokenizing.set()
        self.release.wait(10)
        self.pretokenized.append(threading.current_thread().name)
        return [dataclasses.replace(request, prompt_token_ids=(1, 2)) for request in requests]

    def tokenize(self, texts, add_special_tokens):
        return [[len(text)] for text in texts]

    def detokenize(self, ids, skip_special_tokens):
        return [str(sum(row)) for row in ids]


class RecordingPeer:
    """A child's channel as ModelCalls uses it: the handlers it registers, and what it sends."""

    def __init__(self) -> None:
        self.requests: dict = {}
        self.notifications: dict = {}
        self.sent: list = []
        self.posted: collections.deque = collections.deque()  # the bridge thread's work, run by call and wait_sent

    def post(self, work, peer=None):
        self.posted.append(work)

    def run_posted(self):
        while self.posted:
            self.posted.popleft()()

    def on_request(self, method, handler):
        self.requests[method] = handler

    def on_notification(self, method, handler):
        self.notifications[method] = handler

    def call(self, method, params, request_id=7):
        result = self.requests[method](params)
        if isinstance(result, Deferred):
            result.request_id = request_id
        self.run_posted()
        return result

    def reply(self, deferred, result):
        self.sent.append(("reply", deferred.request_id, result))

    def reply_error(self, deferred, error):
        self.sent.append(("error", deferred.request_id, error.to_json()))

    def notify(self, method, params):
        self.sent.append(("notify", method, params))

    def wait_sent(self, count: int, timeout: float = 10) -> list:
        deadline = time.monotonic() + timeout
        while len(self.sent) < count and time.monotonic() < deadline:
            time.sleep(0.005)
            self.run_posted()
        return self.sent


def serving(engine, **hooks):
    generated: list = []
    peer = RecordingPeer()
    calls = ModelCalls(
        engine,
        peer.post,
        deadline_for=hooks.get("deadline_for", lambda batch_id: f"deadline of {batch_id}"),
        on_generated=lambda batch_id, outcomes, stages: generated.append((batch_id, outcomes, stages)),
        refuse_generate=hooks.get("refuse_generate", lambda batch_id, requests: None),
        refuse_text=hooks.get("refuse_text", lambda method, params: None),
        trace_for=hooks.get("trace_for", lambda batch_id: None),
    )
    calls.serve_on(peer, pid=42)
    return calls, peer, generated


def generate_params(*prompts, batch_id=1, stream=False):
    return {"call_id": 5, "batch_id": batch_id, "requests": [make_request(p, max_tokens=2, stream=stream) for p in prompts]}


def test_a_short_generate_goes_to_the_engine_as_sent_and_is_answered_when_done():
    engine = RecordingEngine(answer_at_once=True)
    _calls, peer, generated = serving(engine)
    params = generate_params("a", "b", stream=True)
    params["requests"][0]["stage"] = "explanation"
    assert isinstance(peer.call(protocol.GENERATE, params), Deferred)
    [(requests, tag, deadline)] = engine.submitted
    assert requests == generate_requests(params["requests"]) and deadline == "deadline of 1" and tag[:2] == ("generate", 42)
    assert engine.pretokenized == []
    delta = {"call_id": 5, "request_index": 0, "sequence_index": 0, "text": "hi", "logprobs": None}
    assert peer.sent == [("notify", protocol.GENERATION_DELTA, delta), ("reply", 7, {"outcomes": [{"ok": True, "texts": ["hi"]}] * 2})]
    assert generated == [(1, [{"ok": True, "texts": ["hi"]}] * 2, ["explanation", "main"])]  # each request's metrics stage


def test_a_generate_call_s_engine_tag_carries_its_request_s_trace_id():
    engine = RecordingEngine(answer_at_once=True)
    _calls, peer, _generated = serving(engine, trace_for=lambda batch_id: f"trace-of-{batch_id}")
    peer.call(protocol.GENERATE, generate_params("a", batch_id=3))
    assert tag_trace(engine.submitted[0][1]) == "trace-of-3"


def test_a_stage_that_could_not_be_a_metrics_label_refuses_its_call_naming_the_field():
    engine = RecordingEngine(answer_at_once=True)
    _calls, peer, generated = serving(engine)
    params = generate_params("a", "b")
    params["requests"][1]["stage"] = "two words"
    answer = peer.call(protocol.GENERATE, params)
    assert [(o["status"], o["field"]) for o in answer["outcomes"]] == [(400, "stage")] * 2 and engine.submitted == []
    assert generated[0][2] == ["main", "main"]  # its counts carry a label TorchServe can read


def test_a_generate_with_long_text_prompts_is_tokenized_on_the_tokenizer_thread_first():
    engine = RecordingEngine(answer_at_once=True)
    calls, peer, _ = serving(engine)
    long_prompt = "x" * OFF_THREAD_TEXT_BYTES
    peer.call(protocol.GENERATE, generate_params(long_prompt))
    peer.wait_sent(1)
    assert engine.pretokenized and engine.pretokenized[0].startswith("tsserve-tokenize")
    assert engine.submitted[0][0][0].prompt_token_ids == (1, 2)
    calls.shutdown()


def test_a_refused_generate_is_answered_at_once_with_its_status_and_field():
    engine = RecordingEngine()
    _calls, peer, generated = serving(engine, refuse_generate=lambda batch_id, requests: (400, "n: too many", "n"))
    answer = peer.call(protocol.GENERATE, generate_params("a", "b"))
    outcome = {"ok": False, "status": 400, "message": "n: too many", "field": "n"}
    assert answer == {"outcomes": [outcome, outcome]} and generated == [(1, [outcome, outcome], ["main", "main"])]
    assert engine.submitted == []


def test_a_refusal_given_as_a_message_is_a_400():
    _calls, peer, _ = serving(RecordingEngine(), refuse_generate=lambda batch_id, requests: "prompt: empty")
    assert peer.call(protocol.GENERATE, generate_params("a")) == {"outcomes": [{"ok": False, "status": 400, "message": "prompt: empty"}]}


def test_node_cancels_one_generate_by_its_request_id():
    engine = RecordingEngine()
    _calls, peer, _ = serving(engine)
    peer.call(protocol.GENERATE, generate_params("a"), request_id=7)
    peer.call(protocol.GENERATE, generate_params("b"), request_id=8)
    peer.notifications[protocol.CANCELLED]({"request_id": 8})
    assert engine.cancelled == [engine.submitted[1][1]]


def test_the_end_of_a_handle_cancels_the_generate_calls_it_opened_and_no_other():
    engine = RecordingEngine()
    calls, peer, _ = serving(engine)
    peer.call(protocol.GENERATE, generate_params("a", batch_id=1))
    peer.call(protocol.GENERATE, generate_params("b", batch_id=2))
    calls.cancel_batch(1)
    assert engine.cancelled == [engine.submitted[0][1]]
    calls.forget_child(42)
    assert engine.cancelled == [engine.submitted[0][1], engine.submitted[0][1], engine.submitted[1][1]]


def test_a_generate_cancelled_while_it_is_tokenized_never_reaches_the_engine():
    engine = RecordingEngine()
    engine.release.clear()
    calls, peer, _generated = serving(engine)
    peer.call(protocol.GENERATE, generate_params("x" * OFF_THREAD_TEXT_BYTES, batch_id=3))
    assert engine.tokenizing.wait(10)
    calls.cancel_batch(3)
    engine.release.set()
    [(_, request_id, result)] = peer.wait_sent(1)
    assert request_id == 7 and result["outcomes"][0]["status"] == 499
    assert engine.submitted == [] and engine.cancelled == []
    calls.shutdown()


def test_small_text_calls_are_answered_at_once_and_big_ones_later():
    calls, peer, _ = serving(RecordingEngine())
    assert peer.call(protocol.TOKENIZE, {"texts": ["abc"], "add_special_tokens": True}) == {"ids": [[3]]}
    assert peer.call(protocol.DETOKENIZE, {"ids": [[1, 2]], "skip_special_tokens": False}) == {"texts": ["3"]}
    assert isinstance(peer.call(protocol.DETOKENIZE, {"ids": [[1] * OFF_THREAD_IDS], "skip_special_tokens": False}), Deferred)
    assert peer.wait_sent(1) == [("reply", 7, {"texts": [str(OFF_THREAD_IDS)]})]
    calls.shutdown()


def test_a_text_call_over_the_limits_is_refused_with_a_400():
    _calls, peer, _ = serving(RecordingEngine(), refuse_text=lambda method, params: f"{method}: too long")
    with pytest.raises(RpcError) as raised:
        peer.call(protocol.TOKENIZE, {"texts": ["abc"], "add_special_tokens": True})
    assert raised.value.to_json() == {"code": INVALID_PARAMS, "message": "tokenize: too long", "data": {"status": 400}}


def test_a_malformed_request_reaches_the_engine_as_a_malformed_one_and_its_siblings_as_parsed():
    engine = RecordingEngine(answer_at_once=True)
    _calls, peer, _generated = serving(engine)
    params = generate_params("a", "b")
    del params["requests"][1]["temperature"]
    peer.call(protocol.GENERATE, params)
    [(requests, _tag, _deadline)] = engine.submitted
    assert requests[0] == generate_requests(params["requests"][:1])[0]
    assert isinstance(requests[1], Malformed) and requests[1].outcome()["field"] == "temperature"
    assert requests[1].outcome()["status"] == 400

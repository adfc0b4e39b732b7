"""One request's error is its own on the vLLM engine (the session's real vLLM engine on SmolLM2, conftest.py)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from types import SimpleNamespace

from protocol_values import make_request

from tsserve_shim.engine.contract import GenerateRequest
from tsserve_shim.engine.vllm.engine import VllmEngine
from tsserve_shim.engine.vllm.failures import refusal, request_failure


def greedy(prompt: str, **overrides) -> dict:
    return make_request(prompt, **{"max_tokens": 8, "logprobs": 1, **overrides})


def texts(outcome: dict) -> list[str]:
    assert outcome["ok"], outcome
    return [sequence["text"] for sequence in outcome["sequences"]]


def test_a_request_vllm_refuses_is_its_own_400_naming_the_field_and_its_call_mates_answer_as_alone(vllm_engine):
    alone = vllm_engine.generate([greedy("Water boils at")])
    refused = greedy("Hello", num_sequences=2, temperature=0.0)  # vLLM: "n must be 1 when using greedy sampling"
    first, bad, last = vllm_engine.generate([greedy("Water boils at"), refused, greedy("Water boils at")])
    assert bad["status"] == 400 and bad["field"] == "n" and bad["message"].startswith("n: the vLLM engine refused the request"), bad
    assert texts(first) == texts(alone[0]) and texts(last) == texts(alone[0])
    # The engine goes on serving.
    assert texts(vllm_engine.generate([greedy("Water boils at")])[0]) == texts(alone[0])


def test_a_cancel_sent_right_after_the_submit_is_honoured_while_the_prompt_is_tokenized(vllm_engine):
    answers: list = []
    arrived = threading.Event()
    started = time.monotonic()
    vllm_engine.submit(
        [greedy("Once upon a time", max_tokens=400)], lambda outcomes: (answers.extend(outcomes), arrived.set()), tag="early"
    )
    vllm_engine.cancel("early")
    assert arrived.wait(60)
    assert answers[0]["status"] == 499, answers[0]
    assert time.monotonic() - started < 10  # not the 400 tokens it asked for


def test_vllm_s_refusals_name_the_request_field():
    from vllm.exceptions import VLLMValidationError

    assert refusal(VLLMValidationError("top_p must be in (0, 1], got 0.0.", parameter="top_p", value=0.0))["field"] == "top_p"
    assert refusal(ValueError("temperature 3 is above 2, the most the vLLM engine takes"))["field"] == "temperature"
    unnamed = refusal(VLLMValidationError("something else is wrong"))
    assert unnamed["status"] == 400 and "field" not in unnamed


def test_a_sequence_vllm_ends_with_error_or_abort_is_that_request_s_failure_not_a_stop():
    """vLLM's outputs faked: a RequestOutput whose completion finished with "error" or "abort"."""

    def outcome_for(reason: str) -> dict | None:
        completion = SimpleNamespace(index=0, token_ids=[], logprobs=None, finish_reason=reason, stop_reason=None)
        out = SimpleNamespace(prompt_logprobs=None, outputs=[completion], num_cached_tokens=0)

        class Llm:
            async def generate(self, *args):
                yield out

        engine = SimpleNamespace(llm=Llm(), _request_ids=itertools.count(), _scores_full_context=lambda request, ids: False)
        return asyncio.run(VllmEngine._generate(engine, GenerateRequest.from_params(greedy("x")), [1, 2], [None], None, "tsserve-1"))

    assert outcome_for("error")["status"] == 500
    assert outcome_for("abort")["status"] == 500 and "aborted" in outcome_for("abort")["message"]


def test_vllm_s_own_busy_and_generate_errors_keep_their_status():
    from vllm.exceptions import MaxQueuedTokensError, QueueOverflowError
    from vllm.v1.engine.exceptions import EngineGenerateError

    busy = request_failure(QueueOverflowError())
    assert busy["status"] == 503 and "busy" in busy["message"]
    assert request_failure(MaxQueuedTokensError())["status"] == 503
    try:
        try:
            raise RuntimeError("KV block lost")
        except RuntimeError as cause:
            raise EngineGenerateError() from cause
    except EngineGenerateError as error:
        failed = request_failure(error)
    assert failed["status"] == 500 and "RuntimeError: KV block lost" in failed["message"]
    assert request_failure(RuntimeError("odd"))["status"] == 500


def test_a_request_vllm_turns_away_as_busy_is_its_own_503_and_its_call_mates_answer_as_alone(vllm_engine, monkeypatch):
    """vLLM's generate raises QueueOverflowError for one request of the call (faked: the real engine serves the others)."""
    from vllm.exceptions import QueueOverflowError

    alone = vllm_engine.generate([greedy("Water boils at")])
    busy_ids = vllm_engine.tokenize(["Hello there"])[0]
    generate = vllm_engine.llm.generate

    def turning_one_away(prompt, params, request_id):
        if list(prompt["prompt_token_ids"]) == busy_ids:
            raise QueueOverflowError()
        return generate(prompt, params, request_id)

    monkeypatch.setattr(vllm_engine.llm, "generate", turning_one_away)
    first, busy, last = vllm_engine.generate([greedy("Water boils at"), greedy("Hello there"), greedy("Water boils at")])
    assert busy["status"] == 503, busy
    assert texts(first) == texts(alone[0]) and texts(last) == texts(alone[0])

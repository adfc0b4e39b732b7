"""Continuous batching at the engine level: calls join the running decode batch and leave it when done,
with the same outputs as Engine.generate gives them alone (the reference)."""

from __future__ import annotations

import copy
import threading
import time

import pytest
from named_outcomes import NamedOutcomes
from protocol_values import make_request

from tsserve_shim.engine.common.deadline import Deadline

LONG_PROMPT = "Once upon a time, in a land far, far away, there lived a king who had three daughters and"


@pytest.fixture(scope="module")
def scheduler(engine):
    return copy.copy(engine).core.start()  # a decode loop of its own over the same model


def tokens_of(outcome: dict) -> list[list[int]]:
    assert outcome["ok"], outcome
    return [s["logprobs"]["token_ids"] for s in outcome["sequences"]]


def test_a_call_alone_gives_what_generate_gives(engine, scheduler):
    requests = [
        make_request("Alan Turing was a", max_tokens=9, logprobs=2),
        make_request("Hello", max_tokens=6, temperature=0.9, seed=4, num_sequences=2),
        make_request("1, 2, 3,", max_tokens=5, echo=True, logprobs=1),
        make_request("x " * 700),
    ]
    want = engine.generate(requests)
    got = scheduler.generate(requests, timeout=120)
    assert got[3]["status"] == 400 == want[3]["status"]
    for a, b in zip(got[:3], want[:3]):
        assert tokens_of(a) == tokens_of(b)
        assert [s["text"] for s in a["sequences"]] == [s["text"] for s in b["sequences"]]
        assert a["sequences"][0]["logprobs"]["token_logprobs"] == pytest.approx(b["sequences"][0]["logprobs"]["token_logprobs"], abs=1e-4)
    assert got[2]["prompt"]["token_logprobs"][1:] == pytest.approx(want[2]["prompt"]["token_logprobs"][1:], abs=1e-4)


def test_a_short_request_admitted_while_a_long_one_decodes_finishes_first(engine, scheduler):
    long_request = make_request("Hi", max_tokens=150, stream=True)
    short_requests = [
        make_request(LONG_PROMPT, max_tokens=6),  # a longer prompt than the running row: the batch is padded to it
        make_request("The capital of France is", max_tokens=8, temperature=0.8, top_k=50, seed=7),
    ]
    alone_long = tokens_of(engine.generate([long_request])[0])
    alone_short = [tokens_of(o) for o in engine.generate(short_requests)]

    finished: list[str] = []
    results: dict[str, list] = {}
    progress = threading.Event()
    all_done = threading.Event()

    def done(name: str):
        def record(outcomes):
            finished.append(name)
            results[name] = outcomes
            if len(finished) == 2:
                all_done.set()

        return record

    def on_delta(*_):
        progress.set()

    scheduler.submit([long_request], done("long"), on_delta=on_delta)
    assert progress.wait(60)  # the long request is decoding
    rows_before = scheduler.running_rows
    scheduler.submit(short_requests, done("short"))
    assert all_done.wait(120)
    assert rows_before == 1
    assert finished == ["short", "long"]
    assert [tokens_of(o) for o in results["short"]] == alone_short
    assert tokens_of(results["long"][0]) == alone_long  # the joined batch did not change the long row


def test_a_late_call_is_504_while_the_running_one_goes_on(engine, scheduler):
    got = NamedOutcomes(2)
    scheduler.submit([make_request("Alan Turing was a", max_tokens=40)], got.done("kept"))
    scheduler.submit([make_request("Hello", max_tokens=400)], got.done("late"), deadlines=Deadline(time.monotonic() + 0.05, 0.05, "test"))
    assert got.wait(120)
    assert got["late"][0]["status"] == 504 and "0.05 s (test)" in got["late"][0]["message"]
    assert len(tokens_of(got["kept"][0])[0]) == 40


def test_many_calls_at_once_each_get_their_own_answer(engine, scheduler):
    prompts = ["Alan Turing was a", "Hello", "1, 2, 3,", LONG_PROMPT, "Q: What is 2+2?\nA:"]
    requests = [make_request(p, max_tokens=3 + 4 * i) for i, p in enumerate(prompts)]
    alone = [tokens_of(o) for o in engine.generate(requests)]
    answers: dict[int, list] = {}
    done_all = threading.Event()

    def record(i):
        def done(outcomes):
            answers[i] = outcomes
            if len(answers) == len(requests):
                done_all.set()

        return done

    for i, request in enumerate(requests):
        scheduler.submit([request], record(i))
        time.sleep(0.01)
    assert done_all.wait(120)
    assert [tokens_of(answers[i][0]) for i in range(len(requests))] == alone


def test_calls_beyond_max_num_seqs_wait_and_then_give_what_they_give_alone(engine):
    watched = copy.copy(engine)
    widths: list[int] = []

    def decode_step(batch, eos_ids):
        widths.append(len(batch.rows))
        return type(watched.runner).decode_step(watched.runner, batch, eos_ids)

    watched.runner.decode_step = decode_step
    watched.scheduler.max_num_seqs = 2
    limited = watched.core
    requests = [make_request(p, max_tokens=6) for p in ("Hello", "The sky is", "One two three", "Alan Turing was a")]
    alone = [tokens_of(engine.generate([r])[0]) for r in requests]
    results: dict[int, dict] = {}
    for i, request in enumerate(requests):
        limited.submit([request], lambda outcomes, i=i: results.__setitem__(i, outcomes[0]))
    limited.run_until_idle()
    assert max(widths) == 2
    assert [tokens_of(results[i])[0] for i in range(len(requests))] == [a[0] for a in alone]

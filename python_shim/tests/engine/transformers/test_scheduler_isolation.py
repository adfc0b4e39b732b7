"""An exception raised for one call fails that call alone: 4 long generations in the running batch,
and the calls that arrived beside the bad one, finish with the tokens they get alone."""

from __future__ import annotations

import copy

import pytest
from protocol_values import make_request

from tsserve_shim.engine.transformers.core import EngineCore

LONG_PROMPTS = ["Tell me a story", "Tell me a poem", "Tell me a joke", "Tell me a fact"]
POISON = "this prompt breaks the forward"


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from tsserve_shim.engine.transformers.engine import Engine
    from tsserve_shim.model.handler_config import HandlerConfig

    section = {"model_path": str(tiny_model_dir), "prefix_cache_mb": 0}
    return Engine.load(HandlerConfig.from_section(section), model_dir=str(tiny_model_dir), gpu_id=None, device_type=None, device_ids=None)


def long_request(prompt: str) -> dict:
    return make_request(prompt, max_tokens=60)


def tokens_of(outcome: dict) -> list:
    assert outcome["ok"], outcome
    return [s["logprobs"]["token_ids"] for s in outcome["sequences"]]


@pytest.fixture(scope="module")
def alone(engine) -> dict:
    prompts = LONG_PROMPTS + ["Hi"]
    return {prompt: tokens_of(engine.generate([long_request(prompt)])[0]) for prompt in prompts}


class Answers(dict):
    def to(self, name: str):
        return lambda outcomes: self.__setitem__(name, outcomes)


def start_long_generations(scheduler: EngineCore, answers: Answers) -> None:
    for prompt in LONG_PROMPTS:
        scheduler.submit([long_request(prompt)], answers.to(prompt))
    for _ in range(3):
        scheduler.step()
    assert scheduler.running_rows == len(LONG_PROMPTS)


def assert_long_generations_unchanged(answers: Answers, alone: dict) -> None:
    for prompt in LONG_PROMPTS:
        assert tokens_of(answers[prompt][0]) == alone[prompt], prompt


def test_a_call_whose_rows_cannot_be_built_fails_alone_and_the_call_beside_it_is_answered(engine, alone):
    scheduler = copy.copy(engine).core  # stepped in this thread: the two calls arrive in the same step
    answers = Answers()
    start_long_generations(scheduler, answers)
    scheduler.submit([make_request("Hi", temperature=None)], answers.to("bad"))  # a handler's generate with temperature: null
    scheduler.submit([long_request("Hi")], answers.to("beside"))
    scheduler.run_until_idle()
    bad = answers["bad"][0]  # refused alone, naming the field (engine/contract.py's Malformed)
    assert not bad["ok"] and bad["status"] == 400 and bad["field"] == "temperature"
    assert tokens_of(answers["beside"][0]) == alone["Hi"]
    assert_long_generations_unchanged(answers, alone)


@pytest.fixture
def poisoned(engine):
    """A scheduler over the engine whose model raises in a decode forward whenever a row of the POISON prompt
    is in the running batch; (scheduler, failures)."""
    scheduler = copy.copy(engine).core
    failures: list = []

    def hook(module, args, kwargs):
        batch = scheduler._batch
        if batch is not None and any(row.prompt == POISON for row in batch.rows) and kwargs["input_ids"].shape[-1] == 1:
            failures.append(len(batch.rows))
            raise RuntimeError("the forward failed")

    handle = engine.runner.model.register_forward_pre_hook(hook, with_kwargs=True)
    yield scheduler, failures
    handle.remove()


def test_a_forward_that_raises_for_the_whole_batch_retries_each_call_alone(poisoned, alone):
    scheduler, failures = poisoned
    answers = Answers()
    start_long_generations(scheduler, answers)
    scheduler.submit([long_request(POISON)], answers.to("poison"))
    scheduler.run_until_idle()
    poison = answers["poison"][0]
    assert not poison["ok"] and poison["status"] == 500 and "the forward failed" in poison["message"]
    assert failures == [len(LONG_PROMPTS) + 1, 1]  # once in the whole batch, once alone
    assert_long_generations_unchanged(answers, alone)


def test_a_call_that_already_streamed_text_is_failed_not_restarted(poisoned):
    scheduler, _ = poisoned
    answers = Answers()
    deltas: list = []
    scheduler.submit(
        [make_request("Tell me a story", max_tokens=60, stream=True)], answers.to("streamed"), on_delta=lambda *delta: deltas.append(delta)
    )
    for _ in range(4):
        scheduler.step()
    assert deltas
    scheduler.submit([long_request(POISON)], answers.to("poison"))
    scheduler.run_until_idle()
    streamed = answers["streamed"][0]
    assert not streamed["ok"] and "the forward failed" in streamed["message"]

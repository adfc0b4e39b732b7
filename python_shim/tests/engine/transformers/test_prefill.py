"""Chunked prefill: a long prompt is prefilled a chunk a step with the same tokens and logprobs as one
forward over the whole text (the independent reference), the running rows get a token between two chunks,
and a prompt whose deadline passes leaves the engine at the next chunk."""

from __future__ import annotations

import copy

import pytest
import torch
from protocol_values import make_request

from tsserve_shim.engine.common.deadline import Deadline

LONG_PROMPT = "Once upon a time, in a land far, far away, there lived a king who had three daughters. " * 12
SHORT_PROMPT = "Alan Turing was a"
NEW_TOKENS = 8
CHUNK_TOKENS = 16


def chunked(engine, *, prefix_cache: bool):
    other = copy.copy(engine)
    other.scheduler.prefill_chunk_tokens = CHUNK_TOKENS
    if not prefix_cache:
        other.use_prefix_cache(0)
    return other


def reference(engine, prompt: str) -> tuple[list[int], list[float]]:
    """Greedy tokens and their logprobs from whole-text forwards of the model itself, no KV cache."""
    ids = engine.encode_prompt(prompt)
    tokens: list[int] = []
    logprobs: list[float] = []
    with torch.inference_mode():
        for _ in range(NEW_TOKENS):
            logits = engine.runner.model(torch.tensor([ids + tokens]), use_cache=False).logits[0, -1].float()
            token = int(logits.argmax())
            tokens.append(token)
            logprobs.append(float(logits.log_softmax(-1)[token]))
            if token in engine.eos_ids:
                break
    return tokens, logprobs


def tokens_and_logprobs(outcome: dict) -> tuple[list[int], list[float]]:
    assert outcome["ok"], outcome
    lp = outcome["sequences"][0]["logprobs"]
    return lp["token_ids"], lp["token_logprobs"]


@pytest.fixture(scope="module")
def want(engine) -> list[tuple[list[int], list[float]]]:
    assert len(engine.encode_prompt(LONG_PROMPT)) > 10 * CHUNK_TOKENS
    return [reference(engine, p) for p in (LONG_PROMPT, SHORT_PROMPT)]


@pytest.mark.parametrize("prefix_cache", [False, True])
def test_a_chunked_long_prompt_gives_what_one_forward_gives(engine, want, prefix_cache):
    prompts = [LONG_PROMPT, SHORT_PROMPT]  # prefilled together: the short row's first chunks are all padding
    outcomes = chunked(engine, prefix_cache=prefix_cache).generate([make_request(p, max_tokens=NEW_TOKENS, logprobs=1) for p in prompts])
    for outcome, (tokens, logprobs) in zip(outcomes, want):
        got_tokens, got_logprobs = tokens_and_logprobs(outcome)
        assert got_tokens == tokens
        assert got_logprobs == pytest.approx(logprobs, abs=1e-4)


def test_running_rows_get_a_token_between_two_chunks(engine):
    core = chunked(engine, prefix_cache=False).core
    finished: list[str] = []
    stream = make_request("Hi", max_tokens=6, stream=True)
    core.submit([stream], lambda outcomes: finished.append("stream"))
    core.step()
    core.submit([make_request(LONG_PROMPT, max_tokens=1)], lambda outcomes: finished.append("long"))
    steps = 0
    while "long" not in finished:
        core.step()
        steps += 1
    assert steps >= len(engine.encode_prompt(LONG_PROMPT)) // CHUNK_TOKENS  # one chunk a step, not the whole prompt at once
    assert finished == ["stream", "long"]  # the stream's tokens came between the long prompt's chunks


class PassesAtCheck:
    """A deadline that passes at its n-th check (a Deadline's interface, without the clock)."""

    def __init__(self, check: int) -> None:
        self.left = check
        self.real = Deadline(0.0, 60.0, "handler.handle_timeout_s")

    def passed(self, now=None) -> bool:
        self.left -= 1
        return self.left <= 0

    def message(self, tokens: int, max_tokens: int) -> str:
        return self.real.message(tokens, max_tokens)


def test_a_prompt_past_its_deadline_leaves_at_the_next_chunk(engine):
    core = chunked(engine, prefix_cache=False).core
    answers: list[dict] = []
    core.submit([make_request(LONG_PROMPT, max_tokens=4)], answers.extend, deadlines=PassesAtCheck(2))
    core.step()  # the prefill's first check and first chunk
    assert core.running_rows == 1 and not answers
    core.step()  # its second check, before the second chunk
    assert answers and answers[0]["status"] == 504 and "handler.handle_timeout_s" in answers[0]["message"]
    assert core.running_rows == 0

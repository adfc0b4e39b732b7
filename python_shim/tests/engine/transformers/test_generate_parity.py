"""The engine's greedy tokens against transformers' own ``model.generate`` (the independent reference),
on the tiny model and on SmolLM2-135M-Instruct: each prompt alone, all of them in one batch, and rows
joining a running batch. test_transformers_range.py runs this file again on the oldest and newest
transformers the engine is tested on (TSSERVE_EXPECT_TRANSFORMERS names the version it must find)."""

from __future__ import annotations

import copy
import os

import pytest
import torch
from protocol_values import make_request

PROMPTS = [
    "The capital of France is",
    "Alan Turing was a",
    "Q: What is 2 + 2?\nA:",
    "Once upon a time, in a land far, far away, there lived a king who had three daughters and",
]
NEW_TOKENS = 12


def test_runs_on_the_expected_transformers():
    import transformers

    expected = os.environ.get("TSSERVE_EXPECT_TRANSFORMERS")
    if expected is None:
        pytest.skip("the venv's own transformers (TSSERVE_EXPECT_TRANSFORMERS is set by test_transformers_range.py)")
    assert transformers.__version__ == expected, transformers.__file__


def generate_reference(engine, prompt: str, max_new_tokens: int) -> list[int]:
    """model.generate's greedy new tokens for the engine's own prompt ids, up to (not including) EOS."""
    ids = engine.encode_prompt(prompt)
    with torch.inference_mode():
        out = engine.runner.model.generate(
            torch.tensor([ids], device=engine.runner.device),
            attention_mask=torch.ones((1, len(ids)), dtype=torch.long, device=engine.runner.device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            repetition_penalty=1.0,
            eos_token_id=sorted(engine.eos_ids),
            pad_token_id=engine.runner.pad_id,
        )
    new = out[0, len(ids) :].tolist()
    ends = [i for i, token in enumerate(new) if token in engine.eos_ids]
    return new[: ends[0]] if ends else new


def engine_tokens(outcome: dict) -> list[int]:
    assert outcome["ok"], outcome
    return outcome["sequences"][0]["logprobs"]["token_ids"]


@pytest.fixture(scope="module", params=["tiny", "smollm2"])
def model_engine(request):
    """Each model's engine with its prefix cache off, so every token comes from the engine's own KV."""
    engine = copy.copy(request.getfixturevalue("engine" if request.param == "tiny" else "smollm2_engine"))
    engine.use_prefix_cache(0)
    return engine


@pytest.fixture(scope="module")
def references(model_engine) -> list[list[int]]:
    return [generate_reference(model_engine, prompt, NEW_TOKENS) for prompt in PROMPTS]


def test_greedy_alone_equals_generate(model_engine, references):
    for prompt, expected in zip(PROMPTS, references):
        [outcome] = model_engine.generate([make_request(prompt, max_tokens=NEW_TOKENS)])
        assert engine_tokens(outcome) == expected, prompt


def test_greedy_in_one_batch_equals_generate(model_engine, references):
    outcomes = model_engine.generate([make_request(prompt, max_tokens=NEW_TOKENS) for prompt in PROMPTS])
    assert [engine_tokens(o) for o in outcomes] == references


def test_rows_joining_a_running_batch_equal_generate(model_engine, references):
    """Each prompt arrives one step after the one before it: every row but the first joins a running batch."""
    scheduler = model_engine.core
    answers: dict[int, list] = {}
    for i, prompt in enumerate(PROMPTS):
        scheduler.submit([make_request(prompt, max_tokens=NEW_TOKENS)], lambda outcomes, i=i: answers.__setitem__(i, outcomes))
        scheduler.step()
    scheduler.run_until_idle()
    assert [engine_tokens(answers[i][0]) for i in range(len(PROMPTS))] == references


def test_a_prefix_cache_hit_equals_generate(model_engine, references):
    engine = copy.copy(model_engine)
    engine.use_prefix_cache(64 * 2**20)
    prompt = PROMPTS[-1]  # more than one 16-token block
    assert len(engine.encode_prompt(prompt)) > engine.runner.prefix_cache.block_tokens
    first, second = (engine.generate([make_request(prompt, max_tokens=NEW_TOKENS)])[0] for _ in range(2))
    assert second["cached_tokens"] > 0
    assert engine_tokens(first) == engine_tokens(second) == references[-1]

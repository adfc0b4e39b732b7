"""The prefix cache: its block tree and budget (unit), and on SmolLM2-135M-Instruct the same
outcomes with the cache as without it (greedy text, token ids, logprobs within 1e-4)."""

from __future__ import annotations

import copy

import pytest
import torch
from protocol_values import make_request

from tsserve_shim.engine.common.scores import Scores
from tsserve_shim.engine.transformers.prefix_cache import BLOCK_TOKENS, PrefixCache

LAYERS, HEADS, DIM = 2, 1, 4
BLOCK_BYTES = 2 * LAYERS * HEADS * BLOCK_TOKENS * DIM * 4  # keys and values, float32


def fake_kv(ids):
    """KV whose values say which token they belong to, so a test can see what a hit copied."""

    def kv(start, end):
        block = torch.tensor(ids[start:end], dtype=torch.float32).view(1, -1, 1).expand(HEADS, -1, DIM).clone()
        return [block.clone() for _ in range(LAYERS)], [block.clone() for _ in range(LAYERS)]

    return kv


def cache_with(budget_blocks: int) -> PrefixCache:
    return PrefixCache(budget_blocks * BLOCK_BYTES)


def tokens(seed: int, n: int) -> list[int]:
    return [seed * 1000 + i for i in range(n)]


# ------------------------------------------------------------------ the block tree


def test_a_prompt_matches_the_full_blocks_it_shares_with_a_cached_one():
    cache = cache_with(16)
    cached = tokens(1, 3 * BLOCK_TOKENS + 5)
    cache.extend(cached, fake_kv(cached))
    assert len(cache) == 3  # full blocks only

    assert len(cache.match(cached)) == 3
    assert len(cache.match(cached[: 2 * BLOCK_TOKENS + 3])) == 2  # a prefix of a cached prompt
    diverging = cached[: BLOCK_TOKENS + 4] + [7] + cached[BLOCK_TOKENS + 5 :]
    chain = cache.match(diverging)
    assert len(chain) == 1 and chain[0].keys[0][0, :, 0].tolist() == cached[:BLOCK_TOKENS]
    assert cache.match([5] + cached[1:]) == []  # the first block differs: nothing past it counts


def test_a_block_is_named_by_its_whole_prefix_not_by_its_own_tokens():
    cache = cache_with(16)
    block = tokens(9, BLOCK_TOKENS)
    first = tokens(1, BLOCK_TOKENS) + block
    cache.extend(first, fake_kv(first))
    assert len(cache.match(tokens(2, BLOCK_TOKENS) + block)) == 0


def test_scoring_lookups_only_take_blocks_that_carry_scores():
    cache = cache_with(16)
    ids = tokens(1, 2 * BLOCK_TOKENS)
    cache.extend(ids, fake_kv(ids))
    assert len(cache.match(ids)) == 2 and cache.match(ids, scored=True) == []
    scores = Scores.first() + Scores([-1.0] * (2 * BLOCK_TOKENS - 1), [[3]] * (2 * BLOCK_TOKENS - 1), [[-0.5]] * (2 * BLOCK_TOKENS - 1))
    cache.extend(ids, fake_kv(ids), scores)
    chain = cache.match(ids, scored=True)
    assert len(chain) == 2 and chain[1].scores.logprobs == [-1.0] * BLOCK_TOKENS


def test_the_budget_evicts_least_recently_used_leaves_first_and_is_never_exceeded():
    cache = cache_with(4)
    a = tokens(1, 2 * BLOCK_TOKENS)
    b = tokens(2, 2 * BLOCK_TOKENS)
    cache.extend(a, fake_kv(a))
    cache.extend(b, fake_kv(b))
    assert len(cache) == 4 and cache.nbytes == 4 * BLOCK_BYTES
    cache.match(a)  # a is used again: b is now the least recently used
    c = tokens(3, BLOCK_TOKENS)
    cache.extend(c, fake_kv(c))
    assert cache.nbytes <= cache.budget_bytes
    assert len(cache.match(a)) == 2 and len(cache.match(c)) == 1
    assert len(cache.match(b)) == 1  # b's leaf went first; its first block stays while it fits

    longer = tokens(4, 6 * BLOCK_TOKENS)  # more than the whole budget
    cache.extend(longer, fake_kv(longer))
    assert cache.nbytes <= cache.budget_bytes
    assert len(cache.match(longer)) == 4  # as much of it as fits, from its root
    assert cache.stats.evicted_blocks >= 4


def test_a_block_larger_than_the_budget_is_not_cached():
    cache = PrefixCache(BLOCK_BYTES - 1)
    ids = tokens(1, BLOCK_TOKENS)
    assert cache.extend(ids, fake_kv(ids)) == [] and cache.nbytes == 0


# ------------------------------------------------------------------ on a real model

CONTEXT = " ".join(f"Question {i}: what is {i} plus {i}? Answer: {2 * i}." for i in range(8))


def cached_engine(reference, budget_bytes: int = 256 * 2**20):
    engine = copy.copy(reference)
    engine.use_prefix_cache(budget_bytes)
    return engine


def assert_same(got: dict, want: dict) -> None:
    assert got["ok"] and want["ok"], (got, want)
    assert [s["text"] for s in got["sequences"]] == [s["text"] for s in want["sequences"]]
    for a, b in zip(got["sequences"], want["sequences"]):
        assert a["logprobs"]["token_ids"] == b["logprobs"]["token_ids"]
        assert a["logprobs"]["token_logprobs"] == pytest.approx(b["logprobs"]["token_logprobs"], abs=1e-4)
    assert got["prompt"]["token_ids"] == want["prompt"]["token_ids"]
    assert got["prompt"]["token_logprobs"][1:] == pytest.approx(want["prompt"]["token_logprobs"][1:], abs=1e-4)
    for a, b in zip(got["prompt"]["top_logprobs"][1:], want["prompt"]["top_logprobs"][1:]):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.keys() == b.keys() and list(a.values()) == pytest.approx(list(b.values()), abs=1e-4)


def mixed_requests() -> list[dict]:
    return [
        make_request(CONTEXT + " Question 40: what is 7 plus 7? Answer:", max_tokens=10),
        make_request(CONTEXT + " Question 40: what is 7 plus 7? Answer: 14", max_tokens=1, echo=True, logprobs=2),
        make_request(CONTEXT + " Question 40: what is 7 plus 7? Answer: 15", max_tokens=0, echo=True, logprobs=1),
        make_request(CONTEXT + " Tell me a story.", max_tokens=8, temperature=0.8, seed=3, num_sequences=2),
        make_request("Hi", max_tokens=4),  # shorter than a block
    ]


@pytest.fixture(scope="module")
def uncached_mixed(smollm2_engine) -> list[dict]:
    return smollm2_engine.generate(mixed_requests())


def test_outcomes_are_the_same_with_and_without_the_cache(smollm2_engine, uncached_mixed):
    requests, want = mixed_requests(), uncached_mixed
    engine = cached_engine(smollm2_engine)
    for round_ in range(2):  # the first round computes and shares, the second finds everything cached
        got = engine.generate(requests)
        for a, b in zip(got, want):
            assert_same(a, b)
        cached = [o["cached_tokens"] for o in got]
        assert cached[4] == 0
        if round_ == 1:
            assert all(c >= o["prompt_tokens"] - BLOCK_TOKENS for c, o in zip(cached[:4], got[:4]))
    stats = engine.runner.prefix_cache.stats
    assert 0 < stats.hit_tokens < stats.prompt_tokens


def test_rows_admitted_together_share_one_computed_prefix(smollm2_engine):
    """The choices of one question arrive in one call: the first computes the context, the others reuse it in the same batch."""
    choices = [
        make_request(CONTEXT + f" Question 40: what is 7 plus 7? Answer: {c}", max_tokens=3, echo=True, logprobs=1)
        for c in (14, 15, 12, 13)
    ]
    want = smollm2_engine.generate(choices)
    engine = cached_engine(smollm2_engine)
    got = engine.generate(choices)
    context_blocks = len(engine.tokenize([CONTEXT])[0]) // BLOCK_TOKENS
    assert got[0]["cached_tokens"] == 0
    assert all(o["cached_tokens"] >= (context_blocks - 1) * BLOCK_TOKENS for o in got[1:])
    for a, b in zip(got, want):
        assert_same(a, b)


def test_a_prompt_that_is_a_prefix_of_a_cached_one(smollm2_engine):
    long_prompt = CONTEXT + " Question 40: what is 7 plus 7? Answer: 14. Question 41: what is 8 plus 8? Answer:"
    engine = cached_engine(smollm2_engine)
    engine.generate([make_request(long_prompt, max_tokens=2)])
    short = make_request(CONTEXT, max_tokens=6, echo=True, logprobs=1)
    got = engine.generate([make_request(CONTEXT, max_tokens=6)])[0]
    n = got["prompt_tokens"]
    assert got["cached_tokens"] == min(n // BLOCK_TOKENS * BLOCK_TOKENS, n - 1)
    assert_same(got, smollm2_engine.generate([make_request(CONTEXT, max_tokens=6)])[0])
    assert_same(engine.generate([short])[0], smollm2_engine.generate([short])[0])


def test_a_tiny_budget_evicts_and_results_stay_the_same(smollm2_engine, uncached_mixed):
    engine = cached_engine(smollm2_engine, budget_bytes=6 * 2**20)  # SmolLM2 holds 45 KiB of float32 KV a token: 8 blocks
    requests, want = mixed_requests(), uncached_mixed
    for _ in range(2):
        got = engine.generate(requests)
        assert engine.runner.prefix_cache.nbytes <= engine.runner.prefix_cache.budget_bytes
        for a, b in zip(got, want):
            assert_same(a, b)
    assert engine.runner.prefix_cache.stats.evicted_blocks > 0


def test_a_next_stage_finds_the_previous_prompt_and_its_generated_text(smollm2_engine):
    """AgentInstruct's stage 2 re-sends stage 1's prompt and answer with a short suffix."""
    engine = cached_engine(smollm2_engine)
    stage1 = make_request(CONTEXT + " Question 8:", max_tokens=40)
    answer = engine.generate([stage1])[0]
    stage2 = make_request(stage1["prompt"] + answer["sequences"][0]["text"] + " Therefore, the answer is", max_tokens=5)
    got = engine.generate([stage2])[0]
    assert got["cached_tokens"] >= got["prompt_tokens"] - 2 * BLOCK_TOKENS
    assert got["cached_tokens"] > answer["prompt_tokens"]  # more than the first prompt: the generated text too
    assert_same(got, smollm2_engine.generate([stage2])[0])


def test_a_copy_of_an_engine_starts_with_an_empty_cache_of_its_own(engine):
    engine.generate([make_request("one two three four five six seven eight nine ten " * 3, max_tokens=2)])
    other = copy.copy(engine)
    assert len(engine.runner.prefix_cache) > 0
    assert other.runner.prefix_cache is not engine.runner.prefix_cache and len(other.runner.prefix_cache) == 0
    assert other.runner.prefix_cache.budget_bytes == engine.runner.prefix_cache.budget_bytes


def test_a_prefill_that_raises_and_is_retried_is_counted_once(engine, monkeypatch):
    """Two calls prefilled together, the forward raising once: each call is prefilled again alone, and the
    cache's counters count each prompt once (they were counted before the forward, so twice)."""
    from tsserve_shim.engine.transformers import model_runner

    cached = cached_engine(engine)
    real = model_runner.forward_with_cache
    raised: list = []

    def flaky(*args, **kwargs):
        if not raised:
            raised.append(True)
            raise RuntimeError("a forward that fails once")
        return real(*args, **kwargs)

    monkeypatch.setattr(model_runner, "forward_with_cache", flaky)
    prompts = ["one two three four five six seven eight nine ten " * 3, "alpha beta gamma delta " * 5]
    answers: list = []
    for prompt in prompts:
        cached.core.submit([make_request(prompt, max_tokens=2)], answers.append)
    cached.core.run_until_idle()
    assert raised and len(answers) == 2 and all(a[0]["ok"] for a in answers)
    assert cached.runner.prefix_cache.stats.prompt_tokens == sum(a[0]["prompt_tokens"] for a in answers)

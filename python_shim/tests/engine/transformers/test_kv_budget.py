"""The KV budget on the tiny model: its arithmetic against a real cache, requests that wait while the
budget is full, the prefix cache inside the same budget, and an out-of-memory error in a decode step
that fails the newest call only."""

from __future__ import annotations

import copy

import pytest
import torch
from protocol_values import make_request
from transformers import DynamicCache

from tsserve_shim.engine.transformers.kv_budget import KvBudget, KvShape, kv_budget_bytes, kv_bytes_per_token
from tsserve_shim.engine.transformers.transformers_compat import forward_with_cache
from tsserve_shim.model.handler_config import ModelConfigError
from tsserve_shim.model.load_plan import LoadPlan
from tsserve_shim.model.placement import Placement

PROMPTS = ["Alan Turing was a", "The quick brown fox jumps over the lazy dog because", "1, 2, 3,", "Hello there, my friend"]
NEW_TOKENS = 8


def test_bytes_per_token_equal_a_real_caches_bytes(engine):
    ids = torch.tensor([engine.encode_prompt(PROMPTS[1])])
    with torch.inference_mode():
        _, cache = forward_with_cache(engine.runner.model, DynamicCache(config=engine.runner.model.config), input_ids=ids)
    held = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
    assert kv_bytes_per_token(engine.runner.model) * ids.shape[1] == held


def test_a_batchs_need_counts_padding_growth_and_the_joins_copy():
    budget = KvBudget(total_bytes=10_000, bytes_per_token=10, layers=2)
    assert budget.need(KvShape(rows=3, width=20, remaining=5)) == 3 * 25 * 10 + 2 * 3 * 20 * 10 // 2
    assert KvShape(2, 20, 5).joined(KvShape(1, 30, 2)) == KvShape(3, 30, 5)
    assert budget.fits(KvShape(3, 20, 5)) and not budget.fits(KvShape(30, 20, 5))


def gpu_plan(max_memory: dict[int, int]) -> LoadPlan:
    return LoadPlan("m", "m", "cuda:0", "float16", "none", placement=Placement("cuda:0", max_memory, tuple(max_memory)))


def test_the_budget_is_kv_cache_mb_or_what_gpu_memory_leaves_after_the_weights():
    assert kv_budget_bytes(3, None, 0) == 3 * 2**20
    assert kv_budget_bytes(None, LoadPlan("m", "m", "cpu", "float32", "none"), 10) is None  # a CPU: no bound
    assert kv_budget_bytes(None, gpu_plan({0: 6 * 2**30, 1: 6 * 2**30}), 10 * 2**30) == int(2 * 2**30 * 0.8)
    with pytest.raises(ModelConfigError, match="leave no room for a KV cache"):
        kv_budget_bytes(None, gpu_plan({0: 2**30}), 2 * 2**30)


@pytest.fixture
def unbounded(engine):
    other = copy.copy(engine)
    other.use_prefix_cache(0)
    return other


def alone(engine, prompt: str) -> list[int]:
    [outcome] = copy.copy(engine).generate([make_request(prompt, max_tokens=NEW_TOKENS)])
    assert outcome["ok"], outcome
    return outcome["sequences"][0]["logprobs"]["token_ids"]


def run_stepwise(engine, prompts, *, steps_between: int = 0):
    """Submit one call per prompt (``steps_between`` steps apart), run to the end; the outcomes and the rows running at every step."""
    scheduler = engine.core
    answers: dict[int, dict] = {}
    running: list[int] = []
    for i, prompt in enumerate(prompts):
        scheduler.submit([make_request(prompt, max_tokens=NEW_TOKENS)], lambda outcomes, i=i: answers.__setitem__(i, outcomes[0]))
        for _ in range(steps_between):
            scheduler.step()
            running.append(scheduler.running_rows)
    while scheduler._has_work():
        scheduler.step()
        running.append(scheduler.running_rows)
    return [answers[i] for i in range(len(prompts))], running


def one_row_need(engine, prompts) -> int:
    budget = KvBudget(1, kv_bytes_per_token(engine.runner.model), engine.runner.model.config.num_hidden_layers)
    return max(budget.need(KvShape(1, len(engine.encode_prompt(p)), NEW_TOKENS)) for p in prompts)


def test_a_tiny_budget_makes_requests_wait_rather_than_fail(unbounded):
    expected = [alone(unbounded, p) for p in PROMPTS]
    bounded = copy.copy(unbounded)
    bounded.use_kv_budget(one_row_need(bounded, PROMPTS) * 3 // 2)  # one row fits, two do not
    outcomes, running = run_stepwise(bounded, PROMPTS)
    assert [o["ok"] for o in outcomes] == [True] * len(PROMPTS), outcomes
    assert [o["sequences"][0]["logprobs"]["token_ids"] for o in outcomes] == expected
    assert max(running) == 1
    _, together = run_stepwise(unbounded, PROMPTS)
    assert max(together) == len(PROMPTS)  # without the budget all of them run at once


def test_a_call_that_cannot_fit_even_alone_is_507_naming_the_budget(unbounded):
    bounded = copy.copy(unbounded)
    bounded.use_kv_budget(one_row_need(bounded, PROMPTS[:1]) + 1)
    outcomes, _ = run_stepwise(bounded, [PROMPTS[0], PROMPTS[1]])
    assert outcomes[0]["ok"]
    assert outcomes[1]["status"] == 507 and "MiB of KV cache and the budget is" in outcomes[1]["message"]


def test_the_prefix_cache_holds_only_what_the_running_rows_leave(engine):
    long_prompt = " ".join(PROMPTS * 3)
    bounded = copy.copy(engine)
    bounded.use_kv_budget(one_row_need(bounded, [long_prompt + " and"]) * 5 // 2)
    bounded.use_prefix_cache(2**30)  # its own limit far above the budget
    scheduler, cache, budget = bounded.core, bounded.runner.prefix_cache, bounded.scheduler.kv_budget
    for prompt in [long_prompt, long_prompt + " and", *PROMPTS]:
        scheduler.submit([make_request(prompt, max_tokens=NEW_TOKENS)], lambda outcomes: None)
    held = []
    shrink = cache.shrink
    cache.shrink = lambda room: (shrink(room), held.append(cache.nbytes))  # after the room given before each prefill too
    while scheduler._has_work():
        scheduler.step()
        held.append(cache.nbytes)
        assert cache.nbytes + budget.need(KvShape.of_batch(scheduler._batch)) <= budget.total_bytes
    assert max(held) > 0 and cache.stats.hit_tokens > 0  # it was used, within the budget


class OomInLastLayer:
    """Raises CUDA's out-of-memory error inside the model's last layer (after the first has added its
    position to the KV cache) in the first decode step with ``rows`` rows."""

    def __init__(self, model, rows: int) -> None:
        self.rows, self.fired = rows, 0
        self.handle = model.model.layers[-1].register_forward_pre_hook(self.hook)

    def hook(self, _module, args):
        hidden = args[0]
        if hidden.shape[0] >= self.rows and hidden.shape[1] == 1 and not self.fired:
            self.fired += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")


def logprobs(outcome: dict) -> list[float]:
    return outcome["sequences"][0]["logprobs"]["token_logprobs"]


def test_an_out_of_memory_step_fails_only_the_newest_call(unbounded):
    expected = [alone(unbounded, p) for p in PROMPTS[:3]]
    expected_logprobs = [logprobs(copy.copy(unbounded).generate([make_request(p, max_tokens=NEW_TOKENS)])[0]) for p in PROMPTS[:2]]
    engine = copy.copy(unbounded)
    prefilled: list[int] = []
    prefill = engine.runner.prefill
    engine.runner.prefill = lambda rows, chunk_tokens=None: (prefilled.extend(row.request for row in rows), prefill(rows, chunk_tokens))[1]
    oom = OomInLastLayer(engine.runner.model, rows=3)
    try:
        outcomes, running = run_stepwise(engine, PROMPTS[:3], steps_between=2)
    finally:
        oom.handle.remove()
    assert oom.fired == 1  # in a step of all three rows
    assert outcomes[2]["status"] == 507 and "out of memory" in outcomes[2]["message"]
    assert [o["sequences"][0]["logprobs"]["token_ids"] for o in outcomes[:2]] == expected[:2]
    assert max(running) == 2  # the third call's rows left at the step that failed
    assert len(prefilled) == 3  # the others went on from where they were, not again from their prompts
    for outcome, lps in zip(outcomes, expected_logprobs):  # the failed step left no trace in the survivors' KV
        assert logprobs(outcome) == pytest.approx(lps, abs=1e-4)


def test_an_out_of_memory_step_first_gives_up_the_prefix_cache(engine):
    expected = [alone(engine, p) for p in PROMPTS[:3]]
    cached = copy.copy(engine)
    cached.use_prefix_cache(2**30)
    cached.generate([make_request(" ".join(PROMPTS * 2), max_tokens=1)])
    assert cached.runner.prefix_cache.nbytes > 0
    oom = OomInLastLayer(cached.runner.model, rows=3)
    try:
        outcomes, _ = run_stepwise(cached, PROMPTS[:3], steps_between=2)
    finally:
        oom.handle.remove()
    assert oom.fired == 1 and all(o["ok"] for o in outcomes), outcomes
    assert [o["sequences"][0]["logprobs"]["token_ids"] for o in outcomes] == expected

"""How a GenerateRequest's sampling settings become vLLM's SamplingParams (vLLM's own class, which
validates them): the fast paths vLLM has are taken wherever the answer is the same."""

from __future__ import annotations

from protocol_values import make_request
from vllm.sampling_params import SamplingType

from tsserve_shim.engine.contract import GenerateRequest
from tsserve_shim.engine.vllm.engine import sampling_params


def params(**fields):
    return sampling_params(GenerateRequest.from_params(make_request("Hello", **fields)))


def test_top_p_0_with_one_sequence_is_greedy():
    p = params(temperature=0.8, top_p=0.0, num_sequences=1, seed=0)
    assert p.sampling_type == SamplingType.GREEDY
    assert p.temperature == 0.0


def test_top_p_0_with_several_sequences_samples_the_top_token():
    p = params(temperature=0.8, top_p=0.0, num_sequences=2, seed=0)
    assert (p.top_k, p.top_p, p.n) == (1, 1.0, 2)
    assert p.sampling_type == SamplingType.RANDOM_SEED


def test_no_seed_samples_without_a_generator_of_its_own():
    assert params(temperature=0.8, top_p=0.9, seed=None).sampling_type == SamplingType.RANDOM
    assert params(temperature=0.8, top_p=0.9, seed=7).sampling_type == SamplingType.RANDOM_SEED


def test_greedy_is_vllms_greedy_path_with_no_top_k_and_no_seed():
    for fields in ({"temperature": 0.8, "top_p": 0.0}, {"temperature": 0.0, "top_p": 0.9, "top_k": 50}):
        p = params(num_sequences=1, seed=3, **fields)
        assert (p.temperature, p.top_k, p.top_p, p.seed) == (0.0, 0, 1.0, None)
        assert p.sampling_type == SamplingType.GREEDY


def test_logprobs_are_asked_of_vllm_only_when_the_request_reports_them():
    assert params(logprobs=None).logprobs is None
    assert params(logprobs=0).logprobs == 0
    assert params(logprobs=3).logprobs == 3
    assert params(logprobs=None, echo=True).prompt_logprobs == 0


def test_full_context_scoring_forces_one_greedy_token():
    p = sampling_params(GenerateRequest.from_params(make_request("Hi", max_tokens=0, echo=True, num_sequences=2, logprobs=None)), 7)
    assert (p.n, p.temperature, p.max_tokens, p.allowed_token_ids, p.logprobs, p.prompt_logprobs) == (1, 0.0, 1, [7], 0, 0)

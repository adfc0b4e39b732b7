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

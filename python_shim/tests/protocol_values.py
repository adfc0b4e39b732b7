"""Protocol values the tests and the benches send: a GenerateRequest, and the initialize params of a fake model."""

from __future__ import annotations

from tsserve_shim.bridge import protocol

FAKE_MODEL_INFO = {
    "name_or_path": "fake",
    "context_length": 64,
    "vocab_size": 32000,
    "bos_token": "<s>",
    "eos_token": "</s>",
    "chat_template": None,
    "device": "cpu",
}


def make_request(prompt: str, **overrides) -> dict:
    """A GenerateRequest: greedy, no stops, top_p 1 (off; 0 would keep only the top token)."""
    request = {
        "prompt": prompt,
        "max_tokens": 12,
        "temperature": 0.0,
        "top_p": 1.0,
        "top_k": 0,
        "repetition_penalty": 1.0,
        "seed": None,
        "stop": [],
        "logprobs": 0,
        "num_sequences": 1,
        "echo": False,
        "stream": False,
    }
    request.update(overrides)
    return request


def initialize_params(model_name: str, model_dir: str, batch_size: int, model_path: str, version: int | None = None) -> dict:
    return {
        "protocol_version": protocol.PROTOCOL_VERSION if version is None else version,
        "model_name": model_name,
        "model_dir": model_dir,
        "gpu_id": None,
        "batch_size": batch_size,
        "model_config": {"handler": {"model_path": model_path}},
        "model_info": FAKE_MODEL_INFO,
    }

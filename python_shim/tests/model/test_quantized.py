"""Quantized loading on CPU, checked against what transformers and bitsandbytes built.

The tiny model is loaded through the shim (Engine.load, as a TorchServe worker
does) with quantize nf4, fp4 and int8; the tests look at the layers, the quant
settings, the memory footprint against float32, and the engine's batched
greedy output against transformers' own ``generate`` on the same model.
"""

from __future__ import annotations

import logging

import bitsandbytes as bnb  # pinned in python_shim/requirements.txt: a missing install fails, it is not skipped
import pytest
import torch
from protocol_values import make_request

from tsserve_shim.engine.transformers.engine import Engine
from tsserve_shim.model import loading
from tsserve_shim.model.handler_config import HandlerConfig
from tsserve_shim.model.weight_bytes import estimate_model_bytes

SETTINGS = ["nf4", "fp4", "int8"]
PROMPTS = [
    "Alan Turing was a",
    "Hello",
    "The quick brown fox jumps over the lazy dog because",
    "Q: What is the capital of France?\nA:",
    "Once upon a time, in a land far, far away, there lived a king who had three daughters and",
    "1, 2, 3,",
]
MAX_TOKENS = [10, 4, 8, 12, 6, 9]


def load(tiny_model_dir, **section) -> Engine:
    return Engine.load(
        HandlerConfig.from_section({"model_path": str(tiny_model_dir), **section}),
        model_dir=str(tiny_model_dir),
        gpu_id=None,
        device_type="cpu",
        device_ids=None,
    )


@pytest.fixture(scope="module")
def float32(tiny_model_dir) -> Engine:
    return load(tiny_model_dir, dtype="float32")


@pytest.fixture(scope="module")
def quantized(tiny_model_dir) -> dict[str, Engine]:
    return {q: load(tiny_model_dir, quantize=q) for q in SETTINGS}


def projections(model) -> dict[str, torch.nn.Module]:
    """Every linear layer inside the decoder (Llama's *_proj), by name."""
    return {name: m for name, m in model.named_modules() if name.rsplit(".", 1)[-1].endswith("_proj")}


def parameter_bytes(model) -> int:
    """get_memory_footprint() less the buffers (rotary tables), which quantization leaves alone."""
    return model.get_memory_footprint() - sum(b.numel() * b.element_size() for b in model.buffers())


def expected_bytes(f32_model, bytes_per_quantized: float, bytes_per_other: int) -> int:
    """From the float32 model's own inventory: each projection weight at the quantized size, the rest unquantized."""
    total = 0.0
    for name, p in f32_model.named_parameters():
        quantized = name.endswith("_proj.weight")
        total += p.numel() * (bytes_per_quantized if quantized else bytes_per_other)
    return int(total)


@pytest.mark.parametrize("setting", ["nf4", "fp4"])
def test_four_bit_layers_are_bitsandbytes_linear4bit(quantized, setting):
    model = quantized[setting].runner.model
    layers = projections(model)
    assert len(layers) == 7 * model.config.num_hidden_layers
    for name, layer in layers.items():
        assert type(layer) is bnb.nn.Linear4bit, name
        assert isinstance(layer.weight, bnb.nn.Params4bit)
        assert layer.weight.dtype == torch.uint8
        assert layer.weight.quant_state.quant_type == setting
        assert layer.compute_dtype == torch.float32  # dtype auto on CPU
        assert layer.weight.device.type == "cpu"
    # The output head and the embeddings stay plain (transformers keeps lm_head out of quantization).
    assert type(model.lm_head) is torch.nn.Linear and model.lm_head.weight.dtype == torch.float32
    assert type(model.model.embed_tokens) is torch.nn.Embedding


def test_int8_layers_are_bitsandbytes_linear8bitlt(quantized):
    model = quantized["int8"].runner.model
    for name, layer in projections(model).items():
        assert type(layer) is bnb.nn.Linear8bitLt, name
        assert isinstance(layer.weight, bnb.nn.Int8Params) and layer.weight.dtype == torch.int8
        assert layer.state.threshold == 6.0
    assert type(model.lm_head) is torch.nn.Linear


def test_compute_dtype_and_double_quant_follow_the_config(tiny_model_dir):
    engine = load(tiny_model_dir, quantize="nf4", dtype="bfloat16", double_quant=True)
    layer = engine.runner.model.model.layers[0].mlp.down_proj
    assert layer.compute_dtype == torch.bfloat16
    assert layer.weight.quant_state.nested  # double quantization: the absmax values are quantized too
    assert engine.runner.model.lm_head.weight.dtype == torch.bfloat16


@pytest.mark.parametrize("setting,per_weight", [("nf4", 0.5), ("fp4", 0.5), ("int8", 1.0)])
def test_footprint_drops_by_the_expected_factor(float32, quantized, setting, per_weight):
    f32, q = float32.runner.model, quantized[setting].runner.model
    # Parameters: projection weights at 4 or 8 bits, everything else float32 (dtype auto on CPU).
    assert parameter_bytes(q) == expected_bytes(f32, per_weight, 4)
    # The projections alone: 8x (4-bit) or 4x (int8) smaller than in float32.
    f32_linear = sum(m.weight.numel() * m.weight.element_size() for m in projections(f32).values())
    q_linear = sum(m.weight.numel() * m.weight.element_size() for m in projections(q).values())
    assert f32_linear / q_linear == 4 / per_weight
    assert q.get_memory_footprint() < f32.get_memory_footprint()


@pytest.mark.parametrize("setting", SETTINGS)
def test_the_size_estimate_matches_what_was_loaded(tiny_model_dir, quantized, setting):
    """estimate_model_bytes (safetensors headers) against the loaded tensors, 4-bit absmax scales included."""
    model = quantized[setting].runner.model
    actual = parameter_bytes(model)
    if setting != "int8":
        actual += sum(m.weight.quant_state.absmax.numel() * 4 for m in projections(model).values())
    estimate = estimate_model_bytes(str(tiny_model_dir), "float32", setting)
    assert estimate == pytest.approx(actual, rel=1e-3)


def greedy_by_generate(engine: Engine, prompt: str, max_tokens: int) -> list[int]:
    """transformers' own greedy decoding of one prompt, alone (no padding), cut at the first EOS."""
    ids = torch.tensor([engine.encode_prompt(prompt)])
    with torch.inference_mode():
        out = engine.runner.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_tokens,
            do_sample=False,
            eos_token_id=sorted(engine.eos_ids),
            pad_token_id=engine.runner.pad_id,
        )
    new = out[0, ids.shape[1] :].tolist()
    cut = next((i for i, t in enumerate(new) if t in engine.eos_ids), len(new))
    return new[:cut]


@pytest.mark.parametrize("setting", SETTINGS)
def test_engine_batched_greedy_equals_generate_on_the_quantized_model(quantized, setting):
    engine = quantized[setting]
    outcomes = engine.generate([make_request(p, max_tokens=n) for p, n in zip(PROMPTS, MAX_TOKENS)])
    for prompt, n, outcome in zip(PROMPTS, MAX_TOKENS, outcomes):
        assert outcome["ok"], outcome
        assert outcome["sequences"][0]["logprobs"]["token_ids"] == greedy_by_generate(engine, prompt, n), prompt


def test_quantized_output_differs_from_float32(float32, quantized):
    """The comparison above can fail: quantization really changes this model's greedy choices."""
    request = [make_request(p, max_tokens=n) for p, n in zip(PROMPTS, MAX_TOKENS)]
    f32 = [o["sequences"][0]["logprobs"]["token_ids"] for o in float32.generate(request)]
    nf4 = [o["sequences"][0]["logprobs"]["token_ids"] for o in quantized["nf4"].generate(request)]
    assert f32 != nf4


def test_cpu_quantization_is_explained_once(tiny_model_dir, caplog, monkeypatch):
    monkeypatch.setattr(loading, "_cpu_quantization_noted", False)
    with caplog.at_level(logging.WARNING, logger=loading.log.name):
        load(tiny_model_dir, quantize="int8")
        load(tiny_model_dir, quantize="nf4")
    notes = [r.getMessage() for r in caplog.records if "on CPU runs bitsandbytes" in r.getMessage()]
    assert len(notes) == 1
    assert "quantize: int8" in notes[0] and "slower than a float32 model" in notes[0] and "memory" in notes[0]

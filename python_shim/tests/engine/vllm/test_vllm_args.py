"""The model config mapped onto vLLM's engine arguments, on this CPU and on GPUs faked through the load plan
(TorchServe's gpu_id and deviceIds, num_gpu_per_model, gpu_max_memory), and checked by vLLM's own argument validation."""

from __future__ import annotations

import pytest
from conftest import SMOLLM2

from tsserve_shim.engine.vllm.args import DEFAULT_CPU_KV_CACHE_MB, not_ready_message, unknown_vllm_args, vllm_launch
from tsserve_shim.model.handler_config import HandlerConfig, ModelConfigError
from tsserve_shim.model.load_plan import plan_load

GiB = 2**30


def gpu_launch(section: dict, *, gpu_id: int = 0, device_count: int = 8, device_ids=None, environ=None, workers: int | None = 1):
    full = HandlerConfig.from_section({"model_path": "/models/llama", "engine": "vllm", **section})
    plan = plan_load(
        full,
        model_dir="/store",
        gpu_id=gpu_id,
        device_type="gpu",
        device_ids=device_ids,
        cuda_available=True,
        device_count=device_count,
        gpu_total_memory=lambda i: 80 * GiB,
        environ=environ or {},
        check_model_size=False,
    )
    return vllm_launch(full, plan, gpu_total_memory=lambda i: 80 * GiB, environ=environ or {}, workers=workers)


def cpu_launch(section: dict):
    full = HandlerConfig.from_section({"model_path": str(SMOLLM2), "engine": "vllm", **section})
    plan = plan_load(full, model_dir=str(SMOLLM2), gpu_id=None, device_type="cpu", device_ids=None, cuda_available=False)
    return vllm_launch(full, plan)


def test_a_cpu_worker_gets_float32_a_bounded_kv_cache_and_the_config_s_settings():
    launch = cpu_launch({"max_num_seqs": 8, "max_model_len": 2048, "enforce_eager": True, "prefix_cache_mb": 0})
    args = launch.engine_args
    assert args["model"] == str(SMOLLM2) and args["dtype"] == "float32"
    assert args["max_num_seqs"] == 8 and args["max_model_len"] == 2048 and args["enforce_eager"] is True
    assert args["enable_prefix_caching"] is False
    assert args["kv_cache_memory_bytes"] == DEFAULT_CPU_KV_CACHE_MB * 2**20
    assert "tensor_parallel_size" not in args and "CUDA_VISIBLE_DEVICES" not in launch.environ
    assert cpu_launch({"kv_cache_mb": 300, "cpu_threads": 2}).engine_args["kv_cache_memory_bytes"] == 300 * 2**20
    assert cpu_launch({"cpu_threads": 2}).environ == {
        "VLLM_CPU_OMP_THREADS_BIND": "0-1",
        "VLLM_ENGINE_READY_TIMEOUT_S": "96",
        "VLLM_WORKER_MULTIPROC_METHOD": "spawn",
    }
    assert cpu_launch({}).engine_args["enable_prefix_caching"] is True


def test_vllm_accepts_the_cpu_arguments():
    from vllm.engine.arg_utils import AsyncEngineArgs

    config = AsyncEngineArgs(**cpu_launch({"max_num_seqs": 8, "max_model_len": 2048}).engine_args).create_engine_config()
    assert config.scheduler_config.max_num_seqs == 8
    assert config.model_config.max_model_len == 2048
    assert config.cache_config.kv_cache_memory_bytes == DEFAULT_CPU_KV_CACHE_MB * 2**20
    # Whole prefills on a CPU (a chunked seeded prefill kills vLLM 0.32's CPU runner): a step fits the longest prompt.
    whole = AsyncEngineArgs(**cpu_launch({}).engine_args).create_engine_config()
    assert whole.scheduler_config.enable_chunked_prefill is False
    assert whole.scheduler_config.max_num_batched_tokens >= whole.model_config.max_model_len == 8192


@pytest.mark.parametrize(
    ("gpu_id", "per_model", "group"),
    # The placement rule (docs/gpu.md): worker gpu_id takes group gpu_id mod (8 // per_model).
    [(0, 1, "0"), (3, 1, "3"), (1, 2, "2,3"), (5, 2, "2,3"), (1, 4, "4,5,6,7"), (0, 8, "0,1,2,3,4,5,6,7")],
)
def test_a_gpu_worker_s_group_becomes_tensor_parallelism_over_its_gpus(gpu_id, per_model, group):
    launch = gpu_launch({"num_gpu_per_model": per_model, "gpu_max_memory": "48GiB", "dtype": "float16"}, gpu_id=gpu_id)
    assert launch.engine_args["tensor_parallel_size"] == per_model
    assert launch.environ["CUDA_VISIBLE_DEVICES"] == group
    assert launch.engine_args["gpu_memory_utilization"] == 0.6  # 48 of 80 GiB
    assert launch.engine_args["dtype"] == "float16"
    assert "kv_cache_memory_bytes" not in launch.engine_args


def test_device_ids_and_an_existing_cuda_visible_devices_are_honoured():
    launch = gpu_launch(
        {"num_gpu_per_model": 2}, gpu_id=4, device_ids=[4, 5, 6, 7], environ={"CUDA_VISIBLE_DEVICES": "0,1,2,3,GPU-a,GPU-b,GPU-c,GPU-d"}
    )
    assert launch.environ["CUDA_VISIBLE_DEVICES"] == "GPU-a,GPU-b"  # ordinals 4 and 5 of what was visible
    assert launch.engine_args["gpu_memory_utilization"] == 0.9  # the default share of the GPU


@pytest.mark.parametrize("quantize", ["int8", "fp4", "nf4"])
@pytest.mark.parametrize("device_type", ["cpu", "gpu"])
def test_bitsandbytes_quantization_is_refused_on_every_device(quantize, device_type):
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

    assert "bitsandbytes" not in QUANTIZATION_METHODS  # vLLM's own list: revisit this refusal when it has it again
    section = {"quantize": quantize}
    with pytest.raises(ModelConfigError, match=rf"^handler\.quantize: {quantize} is bitsandbytes quantization.*engine: transformers"):
        if device_type == "gpu":
            gpu_launch(section)
        else:
            cpu_launch(section)


def test_double_quant_is_refused_with_the_key_named():
    with pytest.raises(ModelConfigError, match=r"^handler\.double_quant: .*engine: transformers"):
        gpu_launch({"double_quant": True})


def test_a_gguf_checkpoint_is_refused(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    full = HandlerConfig.from_section({"model_path": str(tmp_path), "engine": "vllm", "gguf_file": "m.gguf"})
    plan = plan_load(full, model_dir=str(tmp_path), gpu_id=None, device_type="cpu", device_ids=None, cuda_available=False)
    with pytest.raises(ModelConfigError, match=r"^handler\.gguf_file: .*GGUF"):
        vllm_launch(full, plan)


def test_gpu_max_memory_above_a_gpu_is_refused():
    with pytest.raises(Exception, match="gpu_max_memory"):
        gpu_launch({"gpu_max_memory": "100GiB"})


def test_a_bad_kv_cache_size_is_refused():
    with pytest.raises(ModelConfigError, match=r"handler\.kv_cache_mb"):
        cpu_launch({"kv_cache_mb": -5})


def test_vllm_accepts_the_gpu_arguments():
    """vLLM's own validation of the GPU arguments (the engine config itself needs CUDA, so the args' checks only)."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    args = AsyncEngineArgs(**gpu_launch({"num_gpu_per_model": 4, "gpu_max_memory": "70GiB"}, gpu_id=4).engine_args)
    assert args.tensor_parallel_size == 4 and args.quantization is None and 0 < args.gpu_memory_utilization <= 1


@pytest.mark.parametrize(("startup", "ready"), [(600, 480), (None, 96), (20, 30)])
def test_vllm_s_ready_timeout_falls_inside_the_worker_s_start_up_budget(startup, ready):
    """TorchServe kills a worker at startupTimeout (120 s unless the config says): vLLM must give up first, saying why."""
    full = HandlerConfig.from_section({"model_path": str(SMOLLM2), "engine": "vllm"})
    plan = plan_load(full, model_dir=str(SMOLLM2), gpu_id=None, device_type="cpu", device_ids=None, cuda_available=False)
    assert vllm_launch(full, plan, startup_timeout_s=startup).environ["VLLM_ENGINE_READY_TIMEOUT_S"] == str(ready)


# (GPUs, num_gpu_per_model, deviceIds): the most workers with a GPU group each.
GROUPS = [
    (1, 1, None, 1),
    (2, 1, None, 2),
    (2, 2, None, 1),
    (8, 1, None, 8),
    (8, 2, None, 4),
    (8, 4, None, 2),
    (8, 8, None, 1),
    (8, 2, [4, 5, 6], 1),
]


@pytest.mark.parametrize("gpus,per_model,device_ids,groups", GROUPS)
def test_each_vllm_worker_needs_a_gpu_group_of_its_own(gpus, per_model, device_ids, groups):
    section = {"num_gpu_per_model": per_model}
    launch = gpu_launch(section, device_count=gpus, device_ids=device_ids, gpu_id=(device_ids or [0])[0], workers=groups)
    assert launch.engine_args["tensor_parallel_size"] == per_model
    usable = len(device_ids) if device_ids else gpus
    with pytest.raises(
        ValueError, match=rf"{groups + 1} worker\(s\) but {usable} GPU\(s\) make only {groups} group\(s\).*at most {groups}"
    ):
        gpu_launch(section, device_count=gpus, device_ids=device_ids, gpu_id=(device_ids or [0])[0], workers=groups + 1)


def test_without_a_worker_count_torchserve_starts_one_worker_per_gpu():
    assert gpu_launch({"num_gpu_per_model": 1}, device_count=8, workers=None).engine_args["tensor_parallel_size"] == 1
    with pytest.raises(ValueError, match=r"8 worker\(s\) but 8 GPU\(s\) make only 4 group\(s\)"):
        gpu_launch({"num_gpu_per_model": 2}, device_count=8, workers=None)


def test_vllm_arguments_pass_through_and_tsserve_s_own_are_refused_naming_the_key_to_use():
    extra = {"max_num_batched_tokens": 4096, "kv_cache_dtype": "fp8", "disable_log_stats": False}
    args = gpu_launch({"vllm": extra}).engine_args
    assert {key: args[key] for key in extra} == extra
    assert cpu_launch({"vllm": {"enable_chunked_prefill": True}}).engine_args["enable_chunked_prefill"] is False  # a CPU's whole prefills
    for arg, key in (
        ("max_num_seqs", "max_num_seqs"),
        ("tensor_parallel_size", "num_gpu_per_model"),
        ("gpu_memory_utilization", "gpu_max_memory"),
    ):
        with pytest.raises(ModelConfigError, match=rf"^handler\.vllm\.{arg}: tsserve sets it: use handler\.{key}$"):
            gpu_launch({"vllm": {arg: 1}})
    with pytest.raises(ModelConfigError, match=r"^handler\.vllm must be a map"):
        gpu_launch({"vllm": [1]})


def test_max_num_seqs_is_vllm_s_own_on_gpus_unless_the_config_names_it():
    assert "max_num_seqs" not in gpu_launch({}).engine_args
    assert gpu_launch({"max_num_seqs": 32}).engine_args["max_num_seqs"] == 32
    assert cpu_launch({}).engine_args["max_num_seqs"] == 64


def test_an_argument_vllm_does_not_have_is_refused_by_name():
    from dataclasses import fields

    from vllm.engine.arg_utils import AsyncEngineArgs

    known = {f.name for f in fields(AsyncEngineArgs)}
    unknown_vllm_args(HandlerConfig.from_section({"model_path": "/m", "vllm": {"max_num_batched_tokens": 1}}), known)
    with pytest.raises(ModelConfigError, match=r"^handler\.vllm\.max_num_batched_token: is not one of vLLM's engine arguments"):
        unknown_vllm_args(HandlerConfig.from_section({"model_path": "/m", "vllm": {"max_num_batched_token": 1}}), known)


def test_a_vllm_start_that_times_out_says_why_and_what_to_change(monkeypatch):
    from tsserve_shim.engine.vllm import engine

    async def slow_start(*_args):
        raise TimeoutError("Timed out waiting for engine core processes to start.")

    monkeypatch.setattr(engine, "_create_async_llm", slow_start)
    monkeypatch.setattr(engine.os, "environ", {})  # load sets vLLM's variables here, not in this process
    full = HandlerConfig.from_section({"model_path": str(SMOLLM2), "engine": "vllm"})
    with pytest.raises(TimeoutError) as raised:
        engine.VllmEngine.load(full, model_dir=str(SMOLLM2), device_type="cpu", startup_timeout_s=300)
    assert str(raised.value) == not_ready_message(300)
    assert str(raised.value).startswith("vLLM's engine core was not ready within 240 s (VLLM_ENGINE_READY_TIMEOUT_S")
    assert "startupTimeout 300 s" in str(raised.value) and "enforce_eager" in str(raised.value)

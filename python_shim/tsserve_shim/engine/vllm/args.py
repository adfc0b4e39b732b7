"""How a model config's ``handler:`` section becomes vLLM's engine arguments.

Pure: it reads the HandlerConfig and the LoadPlan that model.load_plan made for this worker (paths,
dtype, quantization, the GPUs TorchServe gave it and the memory per GPU) and says what AsyncEngineArgs
and which environment variables the vLLM engine starts with. A setting vLLM cannot serve is refused
here with the key named, so that `tsserve archive` (through the deploy checks) and the worker's load
say the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...model.handler_config import HandlerConfig, ModelConfigError
from ...model.load_plan import LoadPlan
from ...model.placement import check_one_group_per_worker, parse_cuda_visible_devices

# The CPU backend sizes its KV cache from this when handler.kv_cache_mb is not set: vLLM's own default
# reserves a share of all the machine's memory, which fails beside other workers on a small host.
DEFAULT_CPU_KV_CACHE_MB = 1024


@dataclass(frozen=True)
class VllmLaunch:
    """What the vLLM engine starts with: AsyncEngineArgs keywords, and variables set before it starts."""

    engine_args: dict[str, Any]
    environ: dict[str, str] = field(default_factory=dict)


def _refuse_transformers_only(config: HandlerConfig, plan: LoadPlan) -> None:
    if plan.gguf_file is not None:
        raise ModelConfigError(
            "handler.gguf_file: the vLLM engine does not serve GGUF checkpoints;"
            " convert the model to safetensors or set handler.engine: transformers"
        )
    if plan.quantize != "none":
        raise ModelConfigError(
            f"handler.quantize: {plan.quantize} is bitsandbytes quantization, which vLLM 0.32 does not have "
            f"(it serves AWQ and GPTQ checkpoints and fp8); set handler.engine: transformers, the seed's own path for {plan.quantize}"
        )
    if config.double_quant:
        raise ModelConfigError(
            "handler.double_quant: is a bitsandbytes setting, and the vLLM engine does not quantize with bitsandbytes; "
            "remove it or set handler.engine: transformers"
        )


def _visible_devices(group: tuple[int, ...], environ: Mapping[str, str]) -> str:
    """CUDA_VISIBLE_DEVICES for the group's ordinals, which count within what is visible already."""
    current = parse_cuda_visible_devices(environ.get("CUDA_VISIBLE_DEVICES"))
    return ",".join(current[i] if current is not None else str(i) for i in group)


def _gpu_share(plan: LoadPlan, gpu_total_memory: Callable[[int], int]) -> float:
    """gpu_max_memory as the share of each GPU vLLM may use (weights, activations and KV together)."""
    assert plan.placement is not None
    group = plan.placement.group
    per_gpu = plan.placement.max_memory[group[0]]
    total = min(gpu_total_memory(i) for i in group)
    share = per_gpu / total
    if share > 1.0:
        raise ModelConfigError(f"handler.gpu_max_memory ({per_gpu} bytes) is more than a GPU of this worker has ({total} bytes)")
    return math.floor(share * 1000) / 1000


# TorchServe's start-up budget when model-config.yaml names no startupTimeout.
TORCHSERVE_STARTUP_TIMEOUT_S = 120


def ready_timeout_s(startup_timeout_s: float | None) -> int:
    """vLLM's wait for its engine core, inside the worker's start-up budget (the worker's imports and the
    tokenizer come first): vLLM's own timeout then says why, before TorchServe kills the worker."""
    return max(30, int(_startup_budget_s(startup_timeout_s) * 0.8))


def _startup_budget_s(startup_timeout_s: float | None) -> float:
    return TORCHSERVE_STARTUP_TIMEOUT_S if startup_timeout_s is None else float(startup_timeout_s)


def not_ready_message(startup_timeout_s: float | None) -> str:
    """Why a vLLM start timed out, and what to change."""
    budget = _startup_budget_s(startup_timeout_s)
    return (
        f"vLLM's engine core was not ready within {ready_timeout_s(startup_timeout_s)} s (VLLM_ENGINE_READY_TIMEOUT_S, 80 % of "
        f"the worker's start-up budget, startupTimeout {budget:g} s): it was still loading, profiling or compiling the model. "
        "Raise startupTimeout in model-config.yaml, or set handler.enforce_eager: true to skip compiling"
    )


def vllm_launch(
    config: HandlerConfig,
    plan: LoadPlan,
    *,
    gpu_total_memory: Callable[[int], int] | None = None,
    environ: Mapping[str, str] | None = None,
    startup_timeout_s: float | None = None,
    workers: int | None = None,
) -> VllmLaunch:
    """The vLLM engine's arguments for this worker (``gpu_total_memory``: bytes of CUDA ordinal i;
    ``startup_timeout_s``: model-config.yaml's startupTimeout; ``workers``: the most it lets TorchServe
    start, None for TorchServe's default of one per GPU). handler.vllm's arguments come first: tsserve's
    own keys refuse theirs (model/handler_config.py), and on a CPU tsserve's settings win."""
    _refuse_transformers_only(config, plan)
    args: dict[str, Any] = {
        "disable_log_stats": True,  # vLLM's periodic log lines; its stats reach tsserve's stat logger either way
        **config.vllm,
        "model": plan.model_path,
        "tokenizer": plan.tokenizer_path,
        "dtype": plan.dtype_name,
        "enable_prefix_caching": config.prefix_cache_size_mb > 0,
        "enforce_eager": config.enforce_eager,
    }
    if config.max_num_seqs_set or not plan.on_gpu:  # on GPUs vLLM's own default (larger than tsserve's 64)
        args["max_num_seqs"] = config.max_num_seqs
    if config.max_model_len is not None:
        args["max_model_len"] = config.max_model_len
    kv_cache_mb = config.kv_cache_mb
    env: dict[str, str] = {
        "VLLM_ENGINE_READY_TIMEOUT_S": str(ready_timeout_s(startup_timeout_s)),
        # vLLM forks its engine core unless CUDA is initialised already; a fork copies the worker's threads and pipes.
        "VLLM_WORKER_MULTIPROC_METHOD": "spawn",
    }
    if plan.on_gpu:
        _gpu_launch(plan, args, env, gpu_total_memory, environ or {}, workers)
    else:
        kv_cache_mb = DEFAULT_CPU_KV_CACHE_MB if kv_cache_mb is None else kv_cache_mb
        # vLLM 0.32's CPU runner dies (its engine with it) when a seeded request's prefill is split
        # into chunks: it rewinds the request's torch.Generator, which CPU generators cannot do. Whole
        # prefills only: a prompt that does not fit a step's token budget waits for the next step.
        args["enable_chunked_prefill"] = False
        if config.cpu_threads:
            env["VLLM_CPU_OMP_THREADS_BIND"] = f"0-{config.cpu_threads - 1}"
    if kv_cache_mb is not None:
        args["kv_cache_memory_bytes"] = int(kv_cache_mb * 2**20)
    return VllmLaunch(args, env)


def _gpu_launch(plan: LoadPlan, args: dict[str, Any], env: dict[str, str], gpu_total_memory, environ, workers: int | None) -> None:
    """The worker's GPU group: a group of its own, tensor parallelism over it, its memory share, its CUDA_VISIBLE_DEVICES."""
    placement = plan.placement
    assert placement is not None
    check_one_group_per_worker(len(placement.max_memory) if workers is None else workers, placement.usable_gpus, len(placement.group))
    if gpu_total_memory is None:
        raise ModelConfigError("the GPUs' memory is unknown, so handler.gpu_max_memory cannot become vLLM's gpu_memory_utilization")
    args["tensor_parallel_size"] = len(placement.group)
    args["gpu_memory_utilization"] = _gpu_share(plan, gpu_total_memory)
    env["CUDA_VISIBLE_DEVICES"] = _visible_devices(placement.group, environ)


def unknown_vllm_args(config: HandlerConfig, known: Collection[str]) -> None:
    """Refuses a handler.vllm key that is none of vLLM's engine arguments (``known``: AsyncEngineArgs' fields)."""
    for arg in config.vllm:
        if arg not in known:
            raise ModelConfigError(f"handler.vllm.{arg}: is not one of vLLM's engine arguments (AsyncEngineArgs); check its spelling")

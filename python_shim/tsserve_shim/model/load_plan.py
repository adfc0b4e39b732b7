"""What to load where: the handler config and facts about the machine turned into a LoadPlan.

``plan_load`` decides the device, the dtype, the quantization and the placement, and writes them as the
exact ``from_pretrained`` keyword arguments; the machine's facts are passed in, so no CUDA is needed and
every setting is unit-tested on CPU. model/loading.py carries the plan out.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .handler_config import HandlerConfig, ModelConfigError, choices
from .placement import Placement, check_one_process_per_worker, parse_bytes, plan_worker, visible_gpus
from .weight_bytes import estimate_model_bytes

# Share of a GPU's memory used when gpu_max_memory is not configured.
DEFAULT_GPU_MEMORY_FRACTION = 0.9
# transformers' bitsandbytes quantizers (Bnb4BitHfQuantizer, Bnb8BitHfQuantizer .adjust_max_memory)
# give accelerate only 90 % of max_memory, keeping the rest for buffers made while quantizing.
BNB_MAX_MEMORY_SHARE = 0.9


class CudaUnavailableError(RuntimeError):
    """The config needs CUDA (deviceType gpu) and this machine has none."""


@dataclass
class LoadPlan:
    model_path: str
    tokenizer_path: str
    device: str  # "cpu" or "cuda:N": where inputs go
    dtype_name: str  # the resolved dtype: float16 | bfloat16 | float32 | auto (checkpoint's own)
    quantize: str
    kwargs: dict[str, Any] = field(default_factory=dict)  # for AutoModelForCausalLM.from_pretrained
    placement: Placement | None = None
    # A GGUF checkpoint: the file's path; model_path is then its folder.
    gguf_file: str | None = None

    @property
    def on_gpu(self) -> bool:
        return self.device.startswith("cuda")


@dataclass(frozen=True)
class CheckpointPaths:
    """Where the weights and the tokenizer are, resolved."""

    model_path: str
    tokenizer_path: str
    gguf_file: str | None = None  # a GGUF checkpoint's file; model_path is then its folder


def _torch_dtype(name: str):
    import torch

    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[name]


def _resolve(path: str, model_dir: str | os.PathLike | None) -> str:
    """A path from the config: ``~`` expanded, a relative one against the model's folder."""
    path = os.path.expanduser(path)
    if not os.path.isabs(path) and model_dir is not None:
        path = os.path.join(model_dir, path)
    return os.path.normpath(path)


def resolve_paths(config: HandlerConfig, model_dir: str | os.PathLike | None) -> tuple[str, str]:
    """model_path and tokenizer_path, relative ones resolved against the model's folder."""
    return _resolve(config.model_path, model_dir), _resolve(config.tokenizer_path or config.model_path, model_dir)


def _checkpoint_paths(config: HandlerConfig, model_dir: str | os.PathLike | None) -> CheckpointPaths:
    """The checkpoint's paths; for a GGUF file, a bare file name lies inside model_path and a path resolves
    like model_path; its folder is then the model's (and the tokenizer's, unless tokenizer_path is set)."""
    model_path, tokenizer_path = resolve_paths(config, model_dir)
    name = config.gguf_file
    if name is None:
        return CheckpointPaths(model_path, tokenizer_path)
    gguf_file = os.path.join(model_path, name) if os.sep not in name and not name.startswith("~") else _resolve(name, model_dir)
    folder = os.path.dirname(gguf_file)
    return CheckpointPaths(folder, tokenizer_path if config.tokenizer_path else folder, gguf_file)


def quantization_config(quantize: str, compute_dtype: str = "float16", double_quant: bool = False):
    """transformers' BitsAndBytesConfig for a quantize setting (None for "none")."""
    if quantize == "none":
        return None
    from transformers import BitsAndBytesConfig

    if quantize == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=6.0)
    if quantize in ("fp4", "nf4"):
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=quantize,
            bnb_4bit_compute_dtype=_torch_dtype(compute_dtype),
            bnb_4bit_use_double_quant=bool(double_quant),
        )
    raise ModelConfigError(f"handler.quantize must be one of {', '.join(choices('quantize'))}, got {quantize!r}")


def _check_machine(device_type: str | None, cuda_available: bool, environ: Mapping[str, str] | None) -> None:
    """Refuse a deviceType tsserve does not serve, a torchrun process, and deviceType gpu without CUDA."""
    if device_type not in (None, "cpu", "gpu"):
        raise ModelConfigError(f"deviceType {device_type!r} is not supported by tsserve (use cpu or gpu)")
    check_one_process_per_worker(os.environ if environ is None else environ)
    if device_type == "gpu" and not cuda_available:
        raise CudaUnavailableError(
            "deviceType is gpu but CUDA is not available on this machine (torch.cuda.is_available() is False); "
            "set deviceType: cpu or run on a CUDA host"
        )


def _uses_gpu(gpu_id: int | None, device_type: str | None, cuda_available: bool) -> bool:
    return cuda_available and device_type != "cpu" and (gpu_id is not None or device_type == "gpu")


def _per_gpu_bytes(configured: int | float | str | None, usable: Sequence[int], gpu_total_memory: Callable[[int], int] | None) -> int:
    """gpu_max_memory in bytes, else the default share of the smallest usable GPU."""
    if configured is not None:
        return parse_bytes(configured)
    if gpu_total_memory is None:
        raise ModelConfigError("handler.gpu_max_memory is not set and the GPUs' memory is unknown")
    return parse_bytes(int(min(gpu_total_memory(i) for i in usable) * DEFAULT_GPU_MEMORY_FRACTION))


def _gpu_dtype(config: HandlerConfig) -> str:
    """Quantized, the tensors that stay unquantized take the compute dtype: float16 unless dtype says otherwise."""
    if config.quantize == "none" or config.dtype != "auto":
        return config.dtype
    return "float16"


def _quantization_kwargs(config: HandlerConfig, dtype: str) -> dict[str, Any]:
    if config.quantize == "none":
        return {}
    return {"quantization_config": quantization_config(config.quantize, dtype, config.double_quant)}


def plan_load(
    config: HandlerConfig,
    *,
    model_dir: str | os.PathLike | None,
    gpu_id: int | None,
    device_type: str | None,
    device_ids: Sequence[int] | None,
    cuda_available: bool,
    device_count: int = 0,
    gpu_total_memory: Callable[[int], int] | None = None,
    environ: Mapping[str, str] | None = None,
    check_model_size: bool = True,
) -> LoadPlan:
    """Decide device, dtype, quantization and placement. Pure apart from reading safetensors headers."""
    paths = _checkpoint_paths(config, model_dir)
    _check_machine(device_type, cuda_available, environ)
    if not _uses_gpu(gpu_id, device_type, cuda_available):
        return _cpu_plan(config, paths)
    usable = visible_gpus(device_ids, device_count=device_count, environ=environ)
    per_gpu = _per_gpu_bytes(config.gpu_max_memory, usable, gpu_total_memory)
    dtype = _gpu_dtype(config)
    model_bytes = estimate_model_bytes(paths.model_path, dtype, config.quantize) if check_model_size else None
    share = 1.0 if config.quantize == "none" else BNB_MAX_MEMORY_SHARE
    placement = plan_worker(gpu_id, config.num_gpu_per_model, per_gpu, usable, device_count, model_bytes=model_bytes, usable_share=share)
    return _gpu_plan(config, paths, dtype, placement)


def _gpu_plan(config: HandlerConfig, paths: CheckpointPaths, dtype: str, placement: Placement) -> LoadPlan:
    kwargs: dict[str, Any] = {
        # transformers infers the map itself, keeping model._no_split_modules (LlamaDecoderLayer) whole.
        "device_map": "auto",
        # Only the group's GPUs: no silent spill onto other GPUs, the CPU or disk.
        "max_memory": {index: size for index, size in placement.max_memory.items() if size > 0},
        "dtype": "auto" if dtype == "auto" else _torch_dtype(dtype),
        **_quantization_kwargs(config, dtype),
    }
    return LoadPlan(paths.model_path, paths.tokenizer_path, placement.device, dtype, config.quantize, kwargs, placement, paths.gguf_file)


def _cpu_plan(config: HandlerConfig, paths: CheckpointPaths) -> LoadPlan:
    """A CPU worker: float32 unless dtype says otherwise; quantized layers run on bitsandbytes' CPU kernels."""
    dtype = "float32" if config.dtype == "auto" else config.dtype
    kwargs: dict[str, Any] = {"dtype": _torch_dtype(dtype), **_quantization_kwargs(config, dtype)}
    if config.quantize != "none":
        # Named, not left to transformers: without a device_map its bitsandbytes quantizer picks the current GPU.
        kwargs["device_map"] = {"": "cpu"}
    return LoadPlan(paths.model_path, paths.tokenizer_path, "cpu", dtype, config.quantize, kwargs, gguf_file=paths.gguf_file)


def plan_load_here(
    config: HandlerConfig,
    *,
    model_dir: str | os.PathLike | None,
    gpu_id: int | None,
    device_type: str | None,
    device_ids: Sequence[int] | None,
) -> LoadPlan:
    """plan_load with the facts of this machine (torch.cuda)."""
    import torch

    cuda = torch.cuda.is_available()
    return plan_load(
        config,
        model_dir=model_dir,
        gpu_id=gpu_id,
        device_type=device_type,
        device_ids=device_ids,
        cuda_available=cuda,
        device_count=torch.cuda.device_count() if cuda else 0,
        gpu_total_memory=(lambda i: torch.cuda.get_device_properties(i).total_memory) if cuda else None,
    )

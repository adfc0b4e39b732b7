"""How a model is loaded from the YAML ``handler:`` section: pure planning plus one loader.

``plan_load`` turns the config (and facts about the machine, passed in) into a
``LoadPlan`` holding the device and the exact ``from_pretrained`` keyword
arguments; it needs no CUDA, so every setting is unit-tested on CPU.
``load_model`` and ``load_tokenizer`` carry the plan out.
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .placement import Placement, PlacementError, parse_bytes, plan_worker, visible_gpus

DTYPES = ("auto", "float16", "bfloat16", "float32")
QUANTIZE = ("none", "int8", "fp4", "nf4")
# transformers keeps these whole when it spreads a model over GPUs
# (LlamaForCausalLM._no_split_modules); recorded in the plan for the record and checked by tests.
NO_SPLIT_MODULE_CLASSES = ["LlamaDecoderLayer"]
# Share of a GPU's memory used when gpu_max_memory is not configured.
DEFAULT_GPU_MEMORY_FRACTION = 0.9


class ModelConfigError(ValueError):
    """The handler section asks for something invalid."""


class CudaUnavailableError(RuntimeError):
    """The config needs CUDA (quantize, deviceType gpu) and this machine has none."""


@dataclass
class LoadPlan:
    model_path: str
    tokenizer_path: str
    device: str  # "cpu" or "cuda:N": where inputs go
    dtype_name: str  # the resolved dtype: float16 | bfloat16 | float32 | auto (checkpoint's own)
    quantize: str
    kwargs: dict[str, Any] = field(default_factory=dict)  # for AutoModelForCausalLM.from_pretrained
    placement: Placement | None = None
    no_split_module_classes: list[str] = field(default_factory=lambda: list(NO_SPLIT_MODULE_CLASSES))
    # A GGUF checkpoint: the file's path; model_path is then its folder.
    gguf_file: str | None = None

    @property
    def on_gpu(self) -> bool:
        return self.device.startswith("cuda")


def _torch_dtype(name: str):
    import torch

    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[name]


def resolve_paths(section: Mapping[str, Any], model_dir: str | os.PathLike | None) -> tuple[str, str]:
    """model_path and tokenizer_path, relative ones resolved against the model's folder."""
    model_path = section.get("model_path")
    if not isinstance(model_path, str) or not model_path:
        raise ModelConfigError("handler.model_path is required (a folder with a transformers checkpoint)")
    tokenizer_path = section.get("tokenizer_path") or model_path
    if not isinstance(tokenizer_path, str):
        raise ModelConfigError("handler.tokenizer_path must be a string")

    def resolve(p: str) -> str:
        p = os.path.expanduser(p)
        if not os.path.isabs(p) and model_dir is not None:
            p = os.path.join(model_dir, p)
        return os.path.normpath(p)

    return resolve(model_path), resolve(tokenizer_path)


def resolve_gguf_file(section: Mapping[str, Any], model_path: str, model_dir: str | os.PathLike | None) -> str | None:
    """The GGUF checkpoint's path: a bare file name lies inside model_path; a path resolves like model_path."""
    name = section.get("gguf_file")
    if name is None:
        return None
    if not isinstance(name, str) or not name:
        raise ModelConfigError("handler.gguf_file must be a file name inside model_path, or a path")
    if os.sep not in name and not name.startswith("~"):
        return os.path.join(model_path, name)
    return resolve_paths({"model_path": name}, model_dir)[0]


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
    raise ModelConfigError(f"handler.quantize must be one of {', '.join(QUANTIZE)}, got {quantize!r}")


def estimate_model_bytes(model_path: str, dtype_name: str, quantize: str) -> int | None:
    """Rough bytes the weights take once loaded (from the safetensors headers), or None when unknown."""
    files = sorted(Path(model_path).glob("*.safetensors")) if os.path.isdir(model_path) else []
    if not files:
        return None
    sizes = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
    params = 0
    stored = 0
    for path in files:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            count = 1
            for dim in meta["shape"]:
                count *= dim
            params += count
            stored += count * sizes.get(meta["dtype"], 2)
    if quantize == "int8":
        return params
    if quantize in ("fp4", "nf4"):
        return params // 2
    if dtype_name == "auto":
        return stored
    return params * {"float16": 2, "bfloat16": 2, "float32": 4}[dtype_name]


def plan_load(
    section: Mapping[str, Any],
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
    model_path, tokenizer_path = resolve_paths(section, model_dir)
    gguf_file = resolve_gguf_file(section, model_path, model_dir)
    if gguf_file is not None:
        model_path = os.path.dirname(gguf_file)
        if not section.get("tokenizer_path"):
            tokenizer_path = model_path
    dtype = section.get("dtype", "auto") or "auto"
    if dtype not in DTYPES:
        raise ModelConfigError(f"handler.dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    quantize = section.get("quantize", "none") or "none"
    if quantize not in QUANTIZE:
        raise ModelConfigError(f"handler.quantize must be one of {', '.join(QUANTIZE)}, got {quantize!r}")
    double_quant = bool(section.get("double_quant", False))
    num_gpu = section.get("num_gpu_per_model", 1)
    if isinstance(num_gpu, bool) or not isinstance(num_gpu, int) or num_gpu < 1:
        raise ModelConfigError(f"handler.num_gpu_per_model must be a positive integer, got {num_gpu!r}")
    memory = section.get("gpu_max_memory")
    if memory is None:
        memory = section.get("per_gpu_mem")
    if device_type not in (None, "cpu", "gpu"):
        raise ModelConfigError(f"deviceType {device_type!r} is not supported by tsserve (use cpu or gpu)")

    if not cuda_available:
        if device_type == "gpu":
            raise CudaUnavailableError(
                "deviceType is gpu but CUDA is not available on this machine (torch.cuda.is_available() is False); "
                "set deviceType: cpu or run on a CUDA host"
            )
        if quantize != "none":
            raise CudaUnavailableError(
                f"quantize: {quantize} needs a CUDA GPU (bitsandbytes), but CUDA is not available on this machine "
                "(torch.cuda.is_available() is False); set quantize: none to run on CPU"
            )
    use_gpu = cuda_available and device_type != "cpu" and (gpu_id is not None or device_type == "gpu")
    if quantize != "none" and not use_gpu:
        raise CudaUnavailableError(
            f"quantize: {quantize} needs a CUDA GPU but this worker runs on CPU "
            f"(deviceType {device_type!r}, gpu_id {gpu_id!r}); set quantize: none or give the worker a GPU"
        )

    if not use_gpu:
        resolved = "float32" if dtype == "auto" else dtype
        kwargs: dict[str, Any] = {"dtype": _torch_dtype(resolved), "low_cpu_mem_usage": True}
        return LoadPlan(model_path, tokenizer_path, "cpu", resolved, "none", kwargs, gguf_file=gguf_file)

    usable = visible_gpus(device_ids, device_count=device_count, environ=environ)
    if memory is None:
        if gpu_total_memory is None:
            raise ModelConfigError("handler.gpu_max_memory is not set and the GPUs' memory is unknown")
        memory = int(min(gpu_total_memory(i) for i in usable) * DEFAULT_GPU_MEMORY_FRACTION)
    per_gpu = parse_bytes(memory)
    model_bytes = estimate_model_bytes(model_path, dtype, quantize) if check_model_size else None
    placement = plan_worker(gpu_id, num_gpu, per_gpu, usable, device_count, model_bytes=model_bytes)

    kwargs = {
        "device_map": "auto",
        # Only the group's GPUs: no silent spill onto other GPUs, the CPU or disk.
        "max_memory": {index: size for index, size in placement.max_memory.items() if size > 0},
        "low_cpu_mem_usage": True,
    }
    if quantize == "none":
        resolved = dtype
        kwargs["dtype"] = "auto" if dtype == "auto" else _torch_dtype(dtype)
    else:
        resolved = "float16" if dtype == "auto" else dtype
        kwargs["dtype"] = _torch_dtype(resolved)
        kwargs["quantization_config"] = quantization_config(quantize, resolved, double_quant)
    return LoadPlan(model_path, tokenizer_path, placement.device, resolved, quantize, kwargs, placement, gguf_file=gguf_file)


def plan_load_here(
    section: Mapping[str, Any],
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
        section,
        model_dir=model_dir,
        gpu_id=gpu_id,
        device_type=device_type,
        device_ids=device_ids,
        cuda_available=cuda,
        device_count=torch.cuda.device_count() if cuda else 0,
        gpu_total_memory=(lambda i: torch.cuda.get_device_properties(i).total_memory) if cuda else None,
    )


def _gguf_kwargs(plan: LoadPlan) -> dict[str, Any]:
    """from_pretrained's gguf_file argument, after checking the file and the gguf package are there."""
    if plan.gguf_file is None:
        return {}
    if not os.path.isfile(plan.gguf_file):
        raise ModelConfigError(f"handler.gguf_file {plan.gguf_file!r} is not a file")
    try:
        import gguf  # noqa: F401
    except ImportError as error:
        raise ModelConfigError(f"handler.gguf_file needs the gguf package (pip install gguf): {error}") from error
    return {"gguf_file": os.path.basename(plan.gguf_file)}


def _from_gguf(load: Callable[[], Any], plan: LoadPlan):
    """Runs a from_pretrained call, naming the GGUF file when transformers or gguf refuses it."""
    try:
        return load()
    except (NotImplementedError, ValueError) as error:
        if plan.gguf_file is None:
            raise
        raise ModelConfigError(f"handler.gguf_file {plan.gguf_file!r} cannot be loaded by transformers: {error}") from error


def load_tokenizer(plan: LoadPlan):
    from transformers import AutoTokenizer

    gguf = _gguf_kwargs(plan) if plan.tokenizer_path == plan.model_path else {}
    # Checked first: for a missing folder transformers would say "Repo id must be in the form ...".
    if not os.path.isdir(plan.tokenizer_path):
        key = "model_path" if plan.tokenizer_path == plan.model_path else "tokenizer_path"
        raise ModelConfigError(f"handler.{key} {plan.tokenizer_path!r} is not a folder")
    return _from_gguf(lambda: AutoTokenizer.from_pretrained(plan.tokenizer_path, local_files_only=True, **gguf), plan)


def load_model(plan: LoadPlan):
    from transformers import AutoModelForCausalLM

    gguf = _gguf_kwargs(plan)
    if not os.path.isdir(plan.model_path):
        raise ModelConfigError(f"handler.model_path {plan.model_path!r} is not a folder")
    if plan.quantize != "none":
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as error:
            raise ModelConfigError(
                f"quantize: {plan.quantize} needs the bitsandbytes package (pip install bitsandbytes): {error}"
            ) from error
    model = _from_gguf(
        lambda: AutoModelForCausalLM.from_pretrained(plan.model_path, local_files_only=True, **gguf, **plan.kwargs), plan
    )
    if "device_map" not in plan.kwargs:
        model.to(plan.device)
    model.eval()
    return model


__all__ = [
    "CudaUnavailableError",
    "LoadPlan",
    "ModelConfigError",
    "NO_SPLIT_MODULE_CLASSES",
    "PlacementError",
    "estimate_model_bytes",
    "load_model",
    "load_tokenizer",
    "plan_load",
    "plan_load_here",
    "quantization_config",
    "resolve_gguf_file",
    "resolve_paths",
]

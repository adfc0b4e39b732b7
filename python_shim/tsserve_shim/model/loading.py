"""How a model is loaded from the YAML ``handler:`` section: pure planning plus one loader.

``plan_load`` turns the config (and facts about the machine, passed in) into a
``LoadPlan`` holding the device and the exact ``from_pretrained`` keyword
arguments; it needs no CUDA, so every setting is unit-tested on CPU.
``load_model`` and ``load_tokenizer`` carry the plan out; ``infer_device_map``
shows, without weights or a GPU, where transformers would put each layer.
"""
from __future__ import annotations

import json
import logging
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .placement import (
    Placement,
    PlacementError,
    check_one_process_per_worker,
    parse_bytes,
    plan_worker,
    visible_gpus,
)

DTYPES = ("auto", "float16", "bfloat16", "float32")
QUANTIZE = ("none", "int8", "fp4", "nf4")
# Share of a GPU's memory used when gpu_max_memory is not configured.
DEFAULT_GPU_MEMORY_FRACTION = 0.9
# transformers' bitsandbytes quantizers (Bnb4BitHfQuantizer, Bnb8BitHfQuantizer .adjust_max_memory)
# give accelerate only 90 % of max_memory, keeping the rest for buffers made while quantizing.
BNB_MAX_MEMORY_SHARE = 0.9
# Bytes per quantized weight: 4-bit packs two per byte plus one float32 absmax per block of 64
# (bitsandbytes' default blocksize); int8 is one byte plus a float32 scale per output row (ignored).
QUANTIZED_WEIGHT_BYTES = {"nf4": 0.5 + 4 / 64, "fp4": 0.5 + 4 / 64, "int8": 1.0}


log = logging.getLogger(__name__)


class ModelConfigError(ValueError):
    """The handler section asks for something invalid."""


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


_SAFETENSORS_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}


def _safetensors_tensors(model_path: str) -> list[tuple[str, list[int], str]] | None:
    """(name, shape, stored dtype) of every tensor in the checkpoint's safetensors headers; None without any."""
    files = sorted(Path(model_path).glob("*.safetensors")) if os.path.isdir(model_path) else []
    if not files:
        return None
    tensors = []
    for path in files:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        tensors += [(name, meta["shape"], meta["dtype"]) for name, meta in header.items() if name != "__metadata__"]
    return tensors


def is_quantized_weight(name: str, shape: Sequence[int]) -> bool:
    """Whether bitsandbytes quantizes this tensor: the weight of every linear layer but the output head.

    transformers replaces each nn.Linear with a bitsandbytes layer except the
    output embeddings (``lm_head``); token embeddings, norms and biases stay in
    the compute dtype. Judged from the name, as for Llama-family checkpoints.
    """
    return len(shape) == 2 and name.endswith(".weight") and "embed" not in name and not name.startswith("lm_head")


def estimate_model_bytes(model_path: str, dtype_name: str, quantize: str) -> int | None:
    """Bytes the weights take once loaded (from the safetensors headers), or None when unknown.

    ``dtype_name`` is the resolved dtype (for a quantized model: the compute
    dtype the unquantized tensors keep); ``auto`` keeps each tensor's stored size.
    """
    tensors = _safetensors_tensors(model_path)
    if tensors is None:
        return None
    total = 0.0
    for name, shape, stored in tensors:
        count = math.prod(shape)
        if quantize != "none" and is_quantized_weight(name, shape):
            total += count * QUANTIZED_WEIGHT_BYTES[quantize]
        elif dtype_name == "auto":
            total += count * _SAFETENSORS_BYTES.get(stored, 2)
        else:
            total += count * _DTYPE_BYTES[dtype_name]
    return int(total)


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

    check_one_process_per_worker(os.environ if environ is None else environ)
    if device_type == "gpu" and not cuda_available:
        raise CudaUnavailableError(
            "deviceType is gpu but CUDA is not available on this machine (torch.cuda.is_available() is False); "
            "set deviceType: cpu or run on a CUDA host"
        )
    use_gpu = cuda_available and device_type != "cpu" and (gpu_id is not None or device_type == "gpu")
    if not use_gpu:
        return _cpu_plan(model_path, tokenizer_path, dtype, quantize, double_quant, gguf_file)

    usable = visible_gpus(device_ids, device_count=device_count, environ=environ)
    if memory is None:
        if gpu_total_memory is None:
            raise ModelConfigError("handler.gpu_max_memory is not set and the GPUs' memory is unknown")
        memory = int(min(gpu_total_memory(i) for i in usable) * DEFAULT_GPU_MEMORY_FRACTION)
    per_gpu = parse_bytes(memory)
    # Quantized, the tensors that stay unquantized take the compute dtype: float16 unless dtype says otherwise.
    resolved = dtype if quantize == "none" else ("float16" if dtype == "auto" else dtype)
    model_bytes = estimate_model_bytes(model_path, resolved, quantize) if check_model_size else None
    share = 1.0 if quantize == "none" else BNB_MAX_MEMORY_SHARE
    placement = plan_worker(gpu_id, num_gpu, per_gpu, usable, device_count, model_bytes=model_bytes, usable_share=share)

    kwargs: dict[str, Any] = {
        # transformers infers the map itself, keeping model._no_split_modules (LlamaDecoderLayer) whole.
        "device_map": "auto",
        # Only the group's GPUs: no silent spill onto other GPUs, the CPU or disk.
        "max_memory": {index: size for index, size in placement.max_memory.items() if size > 0},
        "dtype": "auto" if resolved == "auto" else _torch_dtype(resolved),
    }
    if quantize != "none":
        kwargs["quantization_config"] = quantization_config(quantize, resolved, double_quant)
    return LoadPlan(model_path, tokenizer_path, placement.device, resolved, quantize, kwargs, placement, gguf_file=gguf_file)


def _cpu_plan(
    model_path: str, tokenizer_path: str, dtype: str, quantize: str, double_quant: bool, gguf_file: str | None
) -> LoadPlan:
    """A CPU worker: float32 unless dtype says otherwise; quantized layers run on bitsandbytes' CPU kernels."""
    resolved = "float32" if dtype == "auto" else dtype
    kwargs: dict[str, Any] = {"dtype": _torch_dtype(resolved)}
    if quantize != "none":
        kwargs["quantization_config"] = quantization_config(quantize, resolved, double_quant)
        # Named, not left to transformers: without a device_map its bitsandbytes quantizer picks the current GPU.
        kwargs["device_map"] = {"": "cpu"}
    return LoadPlan(model_path, tokenizer_path, "cpu", resolved, quantize, kwargs, gguf_file=gguf_file)


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
        _require_bitsandbytes(plan.quantize)
        if not plan.on_gpu:
            _note_quantized_on_cpu(plan.quantize)
    if plan.placement is not None:
        from transformers import AutoConfig

        config = _from_gguf(lambda: AutoConfig.from_pretrained(plan.model_path, local_files_only=True, **gguf), plan)
        check_device_map(plan, config)
    model = _from_gguf(
        lambda: AutoModelForCausalLM.from_pretrained(plan.model_path, local_files_only=True, **gguf, **plan.kwargs), plan
    )
    if "device_map" not in plan.kwargs:
        model.to(plan.device)
    model.eval()
    return model


def _require_bitsandbytes(quantize: str) -> None:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        raise ModelConfigError(
            f"quantize: {quantize} needs the bitsandbytes package (pip install bitsandbytes): {error}"
        ) from error


_cpu_quantization_noted = False


def _note_quantized_on_cpu(quantize: str) -> None:
    """Says once per process why a quantized model on CPU is slow and what it buys."""
    global _cpu_quantization_noted
    if _cpu_quantization_noted:
        return
    _cpu_quantization_noted = True
    share = "a quarter" if quantize == "int8" else "about an eighth"
    log.warning(
        "tsserve: quantize: %s on CPU runs bitsandbytes' CPU kernels, which dequantize weights on every forward "
        "pass and are slower than a float32 model; what it buys is memory: the linear layers' weights take %s "
        "of their float32 size. Use it when the float32 model does not fit in RAM; otherwise quantize: none is faster.",
        quantize,
        share,
    )


def infer_device_map(plan: LoadPlan, config) -> dict[str, int | str]:
    """The device map ``from_pretrained(**plan.kwargs)`` would arrive at, worked out on the meta device.

    It takes transformers' own route (transformers 5.24): the model built from
    ``config`` without weights, its layers swapped for bitsandbytes ones when
    quantized, then ``_get_device_map`` with the plan's ``max_memory`` (which
    applies the quantizer's 90 % and keeps ``model._no_split_modules`` whole).
    No GPU and no checkpoint are needed, so placements of any size can be checked.
    """
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.integrations.accelerate import _get_device_map
    from transformers.quantizers.auto import AutoHfQuantizer

    dtype = plan.kwargs.get("dtype", torch.float32)
    if dtype == "auto":  # the checkpoint's own dtype, as config.json records it
        dtype = getattr(config, "dtype", None) or torch.float16
        dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    quantizer = None
    if plan.kwargs.get("quantization_config") is not None:
        quantizer = AutoHfQuantizer.from_config(plan.kwargs["quantization_config"], pre_quantized=False)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    if quantizer is not None:
        quantizer.preprocess_model(model=model, dtype=dtype, device_map=plan.kwargs.get("device_map"), checkpoint_files=None, use_kernels=False)
    return _get_device_map(model, plan.kwargs.get("device_map"), plan.kwargs.get("max_memory"), quantizer)


def check_device_map(plan: LoadPlan, config) -> dict[str, int | str]:
    """infer_device_map, refusing a map that puts anything outside the worker's GPUs.

    The size check in plan_load compares totals; transformers places whole
    decoder layers and keeps a buffer, so near the limit it may still push the
    last layers to disk (failing the load) or, quantized, refuse. Said here first,
    with the numbers, before any weight is read.
    """
    group = plan.placement.group if plan.placement is not None else ()
    memory = ", ".join(f"GPU {i}: {size / 2**30:.1f} GiB" for i, size in plan.kwargs.get("max_memory", {}).items())
    fix = "raise gpu_max_memory (by about one decoder layer) or num_gpu_per_model, or quantize"
    try:
        device_map = infer_device_map(plan, config)
    except ValueError as error:  # transformers' bitsandbytes quantizer refusing CPU or disk offload
        raise PlacementError(f"the model does not fit in max_memory ({memory}): {error}; {fix}") from error
    outside = sorted({str(device) for device in device_map.values() if device not in group})
    if outside:
        spilled = sum(1 for device in device_map.values() if device not in group)
        raise PlacementError(
            f"transformers would put {spilled} module(s) on {', '.join(outside)} with max_memory ({memory}); {fix}"
        )
    return device_map


__all__ = [
    "CudaUnavailableError",
    "LoadPlan",
    "ModelConfigError",
    "PlacementError",
    "check_device_map",
    "estimate_model_bytes",
    "infer_device_map",
    "is_quantized_weight",
    "load_model",
    "load_tokenizer",
    "plan_load",
    "plan_load_here",
    "quantization_config",
    "resolve_gguf_file",
    "resolve_paths",
]

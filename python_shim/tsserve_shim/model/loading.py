"""Loading a model as its LoadPlan says (model/load_plan.py): the tokenizer, the weights, and first
a check, on the meta device, that transformers' device map keeps every layer on the worker's GPUs.

``infer_device_map`` shows, without weights or a GPU, where transformers would put each layer.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from .handler_config import ModelConfigError
from .load_plan import LoadPlan
from .placement import PlacementError

log = logging.getLogger(__name__)


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
    model = _from_gguf(lambda: AutoModelForCausalLM.from_pretrained(plan.model_path, local_files_only=True, **gguf, **plan.kwargs), plan)
    if "device_map" not in plan.kwargs:
        model.to(plan.device)
    model.eval()
    return model


def _require_bitsandbytes(quantize: str) -> None:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        raise ModelConfigError(f"quantize: {quantize} needs the bitsandbytes package (pip install bitsandbytes): {error}") from error


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
        quantizer.preprocess_model(
            model=model, dtype=dtype, device_map=plan.kwargs.get("device_map"), checkpoint_files=None, use_kernels=False
        )
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
        raise PlacementError(f"transformers would put {spilled} module(s) on {', '.join(outside)} with max_memory ({memory}); {fix}")
    return device_map


__all__ = [
    "check_device_map",
    "infer_device_map",
    "load_model",
    "load_tokenizer",
]

"""How many bytes a checkpoint's weights take once loaded, read from its safetensors headers (no weights read)."""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Sequence
from pathlib import Path

# Bytes per quantized weight: 4-bit packs two per byte plus one float32 absmax per block of 64
# (bitsandbytes' default blocksize); int8 is one byte plus a float32 scale per output row (ignored).
QUANTIZED_WEIGHT_BYTES = {"nf4": 0.5 + 4 / 64, "fp4": 0.5 + 4 / 64, "int8": 1.0}

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

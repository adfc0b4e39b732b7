"""The model config's ``handler:`` section, read once (at the worker's initialize) into a typed value.

Every default and every allowed value comes from model-config.schema.json, which ``npm run schemas``
exports from the zod schema in src/config/model-config.ts: each is written once, there. A bad value is
a ModelConfigError that names its key. Keys the schema does not know (a handler's own fields) are kept
in ``extra``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "model-config.schema.json")


class ModelConfigError(ValueError):
    """The handler section asks for something invalid."""


def _handler_properties() -> dict[str, dict]:
    with open(SCHEMA_PATH, encoding="utf-8") as handle:
        return json.load(handle)["properties"]["handler"]["properties"]


# The schema of each handler key, and the default of each key that has one.
PROPERTIES: Mapping[str, Mapping[str, Any]] = MappingProxyType(_handler_properties())
DEFAULTS: Mapping[str, Any] = MappingProxyType({key: spec["default"] for key, spec in PROPERTIES.items() if "default" in spec})


def choices(key: str) -> tuple[str, ...]:
    """The values the schema allows for an enum key (engine, dtype, quantize), in its order."""
    return tuple(PROPERTIES[key]["enum"])


@dataclass(frozen=True)
class HandlerConfig:
    """The handler section, validated, with the schema's defaults filled in. None: not set."""

    model_path: str  # as written; model/load_plan.py resolves it against the model's folder
    engine: str = DEFAULTS["engine"]
    tokenizer_path: str | None = None  # None: model_path's tokenizer
    gguf_file: str | None = None
    dtype: str = DEFAULTS["dtype"]
    quantize: str = DEFAULTS["quantize"]
    double_quant: bool = DEFAULTS["double_quant"]
    num_gpu_per_model: int = DEFAULTS["num_gpu_per_model"]
    gpu_max_memory: int | float | str | None = None  # bytes per GPU as written (the seed's per_gpu_mem folded in)
    node: str | None = None
    handle_timeout_s: float | None = None
    cpu_threads: int | None = None
    max_num_seqs: int = DEFAULTS["max_num_seqs"]
    max_rows_per_request: int | None = None
    prefill_chunk_tokens: int = DEFAULTS["prefill_chunk_tokens"]
    max_stream_bytes: int = DEFAULTS["max_stream_bytes"]
    prefix_cache_mb: float | None = None  # not set: the engine sizes the cache (prefix_cache_size_mb at most)
    max_model_len: int | None = None
    kv_cache_mb: float | None = None
    enforce_eager: bool = DEFAULTS["enforce_eager"]
    max_num_seqs_set: bool = False  # whether the section names max_num_seqs (vLLM on GPUs otherwise keeps its own default)
    vllm: Mapping[str, Any] = field(default_factory=dict)  # vLLM engine arguments passed through (handler.vllm)
    extra: Mapping[str, Any] = field(default_factory=dict)  # the keys the schema does not know

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> HandlerConfig:
        """Validate model-config.yaml's ``handler:`` section and fill in the schema's defaults."""
        return cls(
            model_path=_model_path(section),
            engine=_choice(section, "engine"),
            tokenizer_path=_tokenizer_path(section),
            gguf_file=_gguf_file(section),
            dtype=_choice(section, "dtype"),
            quantize=_choice(section, "quantize"),
            double_quant=_flag(section, "double_quant"),
            num_gpu_per_model=_positive_int(section, "num_gpu_per_model"),
            gpu_max_memory=_gpu_max_memory(section),
            node=_text(section, "node"),
            handle_timeout_s=_positive_number(section, "handle_timeout_s", "seconds"),
            cpu_threads=_positive_int(section, "cpu_threads"),
            max_num_seqs=_positive_int(section, "max_num_seqs"),
            max_rows_per_request=_positive_int(section, "max_rows_per_request"),
            prefill_chunk_tokens=_positive_int(section, "prefill_chunk_tokens"),
            max_stream_bytes=_positive_int(section, "max_stream_bytes"),
            prefix_cache_mb=_prefix_cache_mb(section),
            max_model_len=_positive_int(section, "max_model_len"),
            kv_cache_mb=_positive_number(section, "kv_cache_mb", "MiB"),
            enforce_eager=_flag(section, "enforce_eager"),
            max_num_seqs_set=section.get("max_num_seqs") is not None,
            vllm=_vllm_args(section),
            extra=MappingProxyType({key: value for key, value in section.items() if key not in PROPERTIES}),
        )

    @property
    def max_rows(self) -> int:
        """The most rows (prompts × n × best_of) one request may ask for: max_rows_per_request, else max_num_seqs."""
        return self.max_rows_per_request or self.max_num_seqs

    @property
    def prefix_cache_size_mb(self) -> float:
        """MiB of prefix cache: prefix_cache_mb, else the schema's default (which the transformers engine
        lowers to a share of its KV budget)."""
        return DEFAULTS["prefix_cache_mb"] if self.prefix_cache_mb is None else self.prefix_cache_mb


def _model_path(section: Mapping[str, Any]) -> str:
    value = section.get("model_path")
    if not isinstance(value, str) or not value:
        raise ModelConfigError("handler.model_path is required (a folder with a transformers checkpoint)")
    return value


def _tokenizer_path(section: Mapping[str, Any]) -> str | None:
    value = section.get("tokenizer_path") or None
    if value is not None and not isinstance(value, str):
        raise ModelConfigError("handler.tokenizer_path must be a string")
    return value


def _gguf_file(section: Mapping[str, Any]) -> str | None:
    value = section.get("gguf_file")
    if value is not None and (not isinstance(value, str) or not value):
        raise ModelConfigError("handler.gguf_file must be a file name inside model_path, or a path")
    return value


def _gpu_max_memory(section: Mapping[str, Any]) -> int | float | str | None:
    """Kept as written: model/placement.py's parse_bytes reads it where a GPU worker needs it."""
    value = section.get("gpu_max_memory")
    return section.get("per_gpu_mem") if value is None else value


def _choice(section: Mapping[str, Any], key: str) -> str:
    value = section.get(key) or DEFAULTS[key]
    allowed = choices(key)
    if value not in allowed:
        raise ModelConfigError(f"handler.{key} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _flag(section: Mapping[str, Any], key: str) -> bool:
    value = section.get(key)
    if value is None:
        return DEFAULTS[key]
    if not isinstance(value, bool):
        raise ModelConfigError(f"handler.{key} must be true or false, got {value!r}")
    return value


def _text(section: Mapping[str, Any], key: str) -> str | None:
    value = section.get(key) or None
    if value is not None and not isinstance(value, str):
        raise ModelConfigError(f"handler.{key} must be a string, got {value!r}")
    return value


def _positive_int(section: Mapping[str, Any], key: str) -> int | None:
    """A positive integer (a float with no fraction counts, as zod's int() takes YAML's ``2.0``); unset: the default."""
    value = section.get(key)
    if value is None:
        return DEFAULTS.get(key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelConfigError(f"handler.{key} must be a positive integer, got {value!r}")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_number(section: Mapping[str, Any], key: str, unit: str) -> float | None:
    value = section.get(key)
    if value is None:
        return None
    if not _number(value) or value <= 0:
        raise ModelConfigError(f"handler.{key} must be a positive number of {unit}, got {value!r}")
    return float(value)


def _prefix_cache_mb(section: Mapping[str, Any]) -> float | None:
    value = section.get("prefix_cache_mb")
    if value is None:
        return None
    if not _number(value) or value < 0:
        raise ModelConfigError(f"handler.prefix_cache_mb must be a number of MiB (0 turns prefix caching off), got {value!r}")
    return float(value)


# vLLM's engine arguments that tsserve sets, each with the handler key that sets it (from the schema).
VLLM_ARGS_TSSERVE_SETS: Mapping[str, str] = MappingProxyType(
    {arg: spec["tsserve_key"] for arg, spec in PROPERTIES["vllm"]["properties"].items()}
)


def _vllm_args(section: Mapping[str, Any]) -> Mapping[str, Any]:
    value = section.get("vllm")
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ModelConfigError(f"handler.vllm must be a map of vLLM engine arguments, got {value!r}")
    for arg in value:
        if arg in VLLM_ARGS_TSSERVE_SETS:
            raise ModelConfigError(f"handler.vllm.{arg}: tsserve sets it: use handler.{VLLM_ARGS_TSSERVE_SETS[arg]}")
    return MappingProxyType(dict(value))

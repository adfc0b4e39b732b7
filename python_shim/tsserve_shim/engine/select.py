"""Which engine serves a model: ``handler.engine`` in its model config.

Both engines have the same interface (ServingEngine): the worker and the bridge drive whichever
this returns. ``vllm`` is vLLM's async engine (the one to serve with); ``transformers`` is tsserve's
own engine on a transformers model, the reference (exact ``generate`` parity, bitsandbytes on a CPU,
GGUF checkpoints, any architecture transformers loads).
"""
from __future__ import annotations

from typing import Any, Callable, Hashable, Mapping, Protocol, Sequence

from ..model.loading import ModelConfigError

ENGINES = ("vllm", "transformers")
DEFAULT_ENGINE = "transformers"


class ServingEngine(Protocol):
    """What the worker and the bridge need of an engine."""

    def start(self) -> "ServingEngine": ...
    def submit(self, requests: Sequence[Mapping[str, Any]], done: Callable[[list], None], on_delta: Any = None, deadlines: Any = None, tag: Hashable | None = None) -> None: ...
    def cancel(self, tag: Hashable) -> None: ...
    def generate(self, requests: Sequence[Mapping[str, Any]], on_delta: Any = None, deadlines: Any = None) -> list[dict]: ...
    def tokenize(self, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]: ...
    def detokenize(self, ids: Sequence[Sequence[int]], skip_special_tokens: bool = False) -> list[str]: ...
    def info(self) -> dict: ...


def engine_name(handler_section: Mapping[str, Any]) -> str:
    name = handler_section.get("engine") or DEFAULT_ENGINE
    if name not in ENGINES:
        raise ModelConfigError(f"handler.engine must be one of {', '.join(ENGINES)}, got {name!r}")
    return str(name)


def engine_class(handler_section: Mapping[str, Any]):
    """The class whose ``load`` builds the engine the section names (imported only when chosen)."""
    if engine_name(handler_section) == "vllm":
        from .vllm_engine import VllmEngine

        return VllmEngine
    from .engine import Engine

    return Engine


def load_engine(handler_section: Mapping[str, Any], **placement: Any) -> ServingEngine:
    """Load the engine the section names (``placement``: model_dir, gpu_id, device_type, device_ids)."""
    return engine_class(handler_section).load(handler_section, **placement)

"""Which engine serves a model: ``handler.engine`` in its model config.

Both engines keep the same contract (contract.ServingEngine): the worker and the bridge drive whichever
this returns. ``vllm`` is vLLM's async engine (the one to serve with); ``transformers`` is tsserve's
own engine on a transformers model, the reference (exact ``generate`` parity, bitsandbytes on a CPU,
GGUF checkpoints, any architecture transformers loads).
"""
from __future__ import annotations

from typing import Any, Mapping

from ..model.loading import ModelConfigError
from .contract import ServingEngine

ENGINES = ("vllm", "transformers")
DEFAULT_ENGINE = "transformers"


def engine_name(handler_section: Mapping[str, Any]) -> str:
    name = handler_section.get("engine") or DEFAULT_ENGINE
    if name not in ENGINES:
        raise ModelConfigError(f"handler.engine must be one of {', '.join(ENGINES)}, got {name!r}")
    return str(name)


def engine_class(handler_section: Mapping[str, Any]):
    """The class whose ``load`` builds the engine the section names (imported only when chosen)."""
    if engine_name(handler_section) == "vllm":
        from .vllm.engine import VllmEngine

        return VllmEngine
    from .transformers.engine import Engine

    return Engine


def load_engine(handler_section: Mapping[str, Any], **placement: Any) -> ServingEngine:
    """Load the engine the section names (``placement``: model_dir, gpu_id, device_type, device_ids,
    startup_timeout_s: model-config.yaml's startupTimeout)."""
    return engine_class(handler_section).load(handler_section, **placement)

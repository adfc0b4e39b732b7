"""Which engine serves a model: ``handler.engine`` in its model config (model/handler_config.py checks the name).

Both engines keep the same contract (contract.ServingEngine): the worker and the bridge drive whichever
this returns. ``vllm`` is vLLM's async engine (the one to serve with); ``transformers`` is tsserve's
own engine on a transformers model, the reference (exact ``generate`` parity, bitsandbytes on a CPU,
GGUF checkpoints, any architecture transformers loads).
"""

from __future__ import annotations

from typing import Any

from ..model.handler_config import HandlerConfig
from .contract import ServingEngine


def engine_class(config: HandlerConfig):
    """The class whose ``load`` builds the engine the config names (imported only when chosen)."""
    if config.engine == "vllm":
        from .vllm.engine import VllmEngine

        return VllmEngine
    from .transformers.engine import Engine

    return Engine


def load_engine(config: HandlerConfig, **placement: Any) -> ServingEngine:
    """Load the engine the config names (``placement``: model_dir, gpu_id, device_type, device_ids,
    startup_timeout_s: model-config.yaml's startupTimeout, workers: the most workers it lets TorchServe start)."""
    return engine_class(config).load(config, **placement)

"""How long the worker gives one request, counted from its arrival at the worker."""
from __future__ import annotations

from ..engine.common.deadline import Deadline

DEFAULT_RESPONSE_TIMEOUT_S = 120


def handle_deadline(model_config: dict) -> float:
    """Seconds the shim gives one request: `handler.handle_timeout_s`, else a little
    below TorchServe's responseTimeout so that the shim answers first."""
    section = model_config.get("handler") or {}
    if section.get("handle_timeout_s"):
        return float(section["handle_timeout_s"])
    response_timeout = float(model_config.get("responseTimeout") or DEFAULT_RESPONSE_TIMEOUT_S)
    return max(1.0, min(response_timeout * 0.9, response_timeout - 2.0))


def deadline_name(model_config: dict) -> str:
    """Which setting the deadline comes from, as a 504 message names it."""
    section = model_config.get("handler") or {}
    if section.get("handle_timeout_s"):
        return "handler.handle_timeout_s"
    response_timeout = float(model_config.get("responseTimeout") or DEFAULT_RESPONSE_TIMEOUT_S)
    return f"set a little below responseTimeout {response_timeout:g} s"


def generation_deadline(deadline_s: float, name: str, arrived: float) -> Deadline:
    """When the decode loop stops a request's rows: a margin before its handle deadline, so that
    the handler still answers (a 504 for the late request) before the worker stops waiting for it."""
    margin = min(0.5, 0.1 * deadline_s)
    return Deadline(arrived + deadline_s - margin, deadline_s, name)

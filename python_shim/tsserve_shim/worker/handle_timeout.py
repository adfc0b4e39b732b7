"""How long the worker gives one request, counted from its arrival at the worker: the handle timeout
(the wait for Node's answer) and, a margin inside it, the deadline of the request's generation."""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.common.deadline import Deadline

# TorchServe's responseTimeout when model-config.yaml names none.
DEFAULT_RESPONSE_TIMEOUT_S = 120


@dataclass(frozen=True)
class HandleTimeout:
    """Seconds the shim gives one request, and the setting they come from (as a 504 message names it)."""

    seconds: float
    name: str

    def generation_deadline(self, arrived: float) -> Deadline:
        """When the decode loop stops a request's rows: a margin before its handle deadline, so that
        the handler still answers (a 504 for the late request) before the worker stops waiting for it."""
        margin = min(0.5, 0.1 * self.seconds)
        return Deadline(arrived + self.seconds - margin, self.seconds, self.name)


def handle_timeout(handle_timeout_s: float | None, response_timeout: float | None) -> HandleTimeout:
    """`handler.handle_timeout_s`, else a little below TorchServe's responseTimeout so that the shim answers first."""
    if handle_timeout_s:
        return HandleTimeout(float(handle_timeout_s), "handler.handle_timeout_s")
    response_timeout = float(response_timeout or DEFAULT_RESPONSE_TIMEOUT_S)
    seconds = max(1.0, min(response_timeout * 0.9, response_timeout - 2.0))
    return HandleTimeout(seconds, f"set a little below responseTimeout {response_timeout:g} s")

"""Which request a log line or an error body is about: each HTTP request's trace id.

The id is the client's `X-Request-Id` header when it sent a usable one, else TorchServe's own request id
(the frontend's UUID for the job). It travels with the request: the IncomingRequest's `request_id` (the Node
child prefixes its lines about the request with it), the bridge and the engine (a generate call's engine tag),
every `tsserve:` log line about the request (`[request ID]`) and an error body's `error.request_id`. The worker's
answer line also names TorchServe's id, which the frontend sends back in every answer's `x-request-id` header
(it sets that header itself), so `tsserve logs --request` finds the request's lines from either id.
"""

from __future__ import annotations

import re
from typing import Any

from ..engine.contract import tagged

__all__ = ["client_request_id", "header_problem", "tagged", "trace_id"]

HEADER = "x-request-id"
# Short printable ASCII without spaces: it goes into log lines, a response header and vLLM's request ids.
USABLE_ID = re.compile(r"[\x21-\x7e]{1,128}")


def client_request_id(context: Any, index: int) -> str | None:
    """The row's `X-Request-Id` header, as the client sent it (header names are case-insensitive)."""
    processors = getattr(context, "request_processor", None)
    if not processors or index >= len(processors):
        return None
    headers = context.get_all_request_header(index) or {}
    for name, value in headers.items():
        if isinstance(name, str) and name.lower() == HEADER:
            return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)
    return None


def trace_id(context: Any, index: int) -> str:
    """The row's trace id: a usable `X-Request-Id` from the client, else TorchServe's request id."""
    given = client_request_id(context, index)
    if given is not None and USABLE_ID.fullmatch(given):
        return given
    own = torchserve_request_id(context, index)
    return own if own else f"row-{index}"


def torchserve_request_id(context: Any, index: int) -> str | None:
    """TorchServe's own id of the batch's row ``index`` (None where the context has none, as a bench's stand-in)."""
    own = context.get_request_id(index) if getattr(context, "request_ids", None) and hasattr(context, "get_request_id") else None
    return str(own) if own else None


def header_problem(context: Any, index: int) -> str | None:
    """Why the client's `X-Request-Id` cannot be used (the request is refused with a 400 naming it), or None."""
    given = client_request_id(context, index)
    if given is None or USABLE_ID.fullmatch(given):
        return None
    return "X-Request-Id: must be 1 to 128 printable ASCII characters without spaces"

"""TorchServe's input rows as the IncomingRequests that the Node handler reads (src/protocol/messages.ts)."""
from __future__ import annotations

import math
from typing import Any, Optional

import orjson


def _non_finite(value: Any, path: str = "") -> Optional[str]:
    """The field path of the first NaN or infinite number in a decoded body, if any."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "body"
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return None


def decode_body(row: Any) -> dict:
    """One TorchServe input row as an IncomingRequest.

    TorchServe's worker has already decoded an application/json body with
    Python's json module, which accepts NaN and 1e999; JSON-RPC cannot carry
    them (they would arrive in Node as null, i.e. "absent"), so they are refused here.
    """
    body = row.get("body") if isinstance(row, dict) else None
    if body is None and isinstance(row, dict):
        body = row.get("data")
    if isinstance(body, (bytes, bytearray)):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            return {"body": None, "body_error": "body: is not valid UTF-8"}
    if isinstance(body, str):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            return {"body": None, "body_error": f"body: is not valid JSON ({error})"}
    field = _non_finite(body)
    if field:
        return {"body": None, "body_error": f"{field}: must be a finite number (NaN and Infinity are not JSON)"}
    return {"body": body}


def with_url_path(request: dict, context, index: int) -> dict:
    """Adds the row's sub-path (TorchServe's `url_path` header: what follows
    `/predictions/<model>/<version>/`), which picks the handler route that answers."""
    processors = getattr(context, "request_processor", None)
    url_path = context.get_request_header(index, "url_path") if processors and index < len(processors) else None
    if url_path:
        request["url_path"] = url_path
    return request

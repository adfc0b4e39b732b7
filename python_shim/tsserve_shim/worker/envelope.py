"""KServe's request envelopes, as the shim sees them.

With `service_envelope=kserve` (KServe protocol v1) or `kservev2` (v2, also
set by KServe through TS_SERVICE_ENVELOPE), TorchServe's worker unwraps the
first request of a batch before the handler runs (ts/torch_handler/
request_envelope/) and wraps what the handler returns as that request's one
response:

- v1: the handler gets `body["instances"]` (any number of them, or None) and
  returns one result per instance; the client gets `{"predictions": results}`.
  Each instance here is one completion request object; each result is its
  response body (a JSON object), or its error body.
- v2: the handler gets `body["inputs"]`, each `{"name", "datatype", "shape",
  "data"}` with a BYTES input's `data` reduced to its first element; each
  result becomes an output `{"name", "datatype", "shape", "data"}`. Here a
  BYTES input carries a completion request as JSON text, and the output
  carries the response body as JSON text (datatype BYTES).

The handler is not told which envelope is on; the rows say: v2 inputs have a
`datatype`, and v1 instances are not TorchServe's rows (those carry `body` or
`data`), or come in a number other than the batch's requests. Streaming is
refused (the envelope answers once), and a failed instance sets the status of
the whole response (KServe has one per request) while its error body takes
its place among the results.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from .replies import outcome_body, reason_phrase, too_large
from .requests import decode_body

KSERVE_V1 = "kserve"
KSERVE_V2 = "kservev2"


def _is_v2_input(row: Any) -> bool:
    return isinstance(row, dict) and "datatype" in row and "name" in row and "data" in row


def _is_torchserve_row(row: Any) -> bool:
    """A row as TorchServe's worker builds it: the request's parameters (`body` for a JSON body), form
    fields as bytes, or nothing at all (a job still in flight under the frontend's continuous batching)."""
    if not isinstance(row, dict):
        return False
    return not row or "body" in row or "data" in row or any(isinstance(value, (bytes, bytearray)) for value in row.values())


def detect(data: Any, context: Any) -> str | None:
    """KSERVE_V1, KSERVE_V2, or None for TorchServe's own rows."""
    if not data:
        return KSERVE_V1  # no instances: TorchServe itself never sends an empty batch
    if all(_is_v2_input(row) for row in data):
        return KSERVE_V2
    request_ids = getattr(context, "request_ids", None) or {}
    if request_ids and len(data) != len(request_ids):
        return KSERVE_V1
    return None if all(_is_torchserve_row(row) for row in data) else KSERVE_V1


def _refuse(message: str) -> dict:
    return {"body": None, "body_error": message}


def requests(envelope: str, data: Any) -> list[dict]:
    """The IncomingRequests of the unwrapped rows; a streamed request is refused (the envelope answers once)."""
    out = []
    for index, row in enumerate(data or []):
        if envelope == KSERVE_V2:
            request = decode_body(row)  # the input's `data`: the request as JSON text (or an object)
        elif isinstance(row, dict):
            request = decode_body({"body": row})
        else:
            request = _refuse(f"instances[{index}]: must be a completion request object, not {type(row).__name__}")
        body = request.get("body")
        if isinstance(body, dict) and body.get("stream"):
            request = _refuse("stream: not available through the KServe envelope, which answers each request once")
        out.append(request)
    return out


def no_instances() -> list[dict]:
    return [{"ok": False, "status": 400, "message": "instances: a non-empty list of completion requests is required", "field": "instances"}]


def _wrapped_bytes(results: list[Any], limit: int) -> int:
    """About how many bytes the envelope's one response takes: TorchServe's worker writes it with
    json.dumps(indent=2), measured exactly only when the compact form is near the limit."""
    compact = len(orjson.dumps(results))
    if compact * 8 < limit:
        return compact
    return len(json.dumps({"predictions": results}, indent=2).encode("utf-8"))


def responses(envelope: str, context: Any, outcomes: list[dict], limit: int | None = None) -> list[Any]:
    """One result per instance or input, for the envelope to wrap; the first failure's status becomes the response's.
    Over ``limit`` bytes in all, every result is the same 413."""
    if limit is not None:
        size = _wrapped_bytes([outcome_body(outcome) for outcome in outcomes], limit)
        if size > limit:
            outcomes = [too_large(size, limit)] * len(outcomes)
    failed = next((outcome for outcome in outcomes if not outcome["ok"]), None)
    if failed is not None:
        context.set_response_status(failed["status"], reason_phrase(failed["message"]), 0)
    results = []
    for outcome in outcomes:
        body = outcome_body(outcome)
        if envelope == KSERVE_V2 and not isinstance(body, str):
            body = orjson.dumps(body).decode("utf-8")
        results.append(body)
    return results


def wrap(envelope: str, context: Any, results: list[Any]) -> list[dict]:
    """The one response an envelope's format_output makes of the results (under asyncCommunication
    the handler's coroutine passes the envelope by unformatted, so the shim wraps them itself)."""
    if envelope == KSERVE_V1:
        return [{"predictions": results}]
    names = getattr(context, "input_names", None) or [f"output-{i}" for i in range(len(results))]
    model = (getattr(context, "manifest", None) or {}).get("model") or {}
    return [
        {
            "id": getattr(context, "input_request_id", None) or context.get_request_id(0),
            "model_name": model.get("modelName"),
            "model_version": model.get("modelVersion"),
            "outputs": [{"name": name, "datatype": "BYTES", "data": [result], "shape": [1]} for name, result in zip(names, results)],
        }
    ]

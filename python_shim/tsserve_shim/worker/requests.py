"""TorchServe's input rows as the IncomingRequests that the Node handler reads (src/protocol/messages.ts)."""

from __future__ import annotations

import math
from typing import Any

import orjson

# What the channel to Node carries (orjson): 64-bit integers, valid Unicode, and nesting to a
# depth of 254 counted from the handle message, whose envelope takes 4 of them.
MIN_INTEGER = -(2**63)
MAX_INTEGER = 2**64 - 1
MAX_BODY_DEPTH = 200


def _number_problem(value: Any) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number (NaN and Infinity are not JSON)"
    if isinstance(value, int) and not isinstance(value, bool) and not MIN_INTEGER <= value <= MAX_INTEGER:
        return f"the integer {_shorten(str(value))} is out of range (integers from -2^63 to 2^64-1 are accepted)"
    return None


def _text_problem(value: str) -> str | None:
    if value.isascii():
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"contains a lone surrogate (\\u{ord(value[error.start]):04x} at character {error.start}), which is not valid Unicode"
    return None


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} digits)"


def _plain_integers(values: list) -> bool:
    """A list of in-range ints only (a prompt of token ids), checked at C speed."""
    return bool(values) and set(map(type, values)) == {int} and min(values) >= MIN_INTEGER and max(values) <= MAX_INTEGER


def _unsendable(value: Any, path: str = "", depth: int = 0) -> str | None:
    """'field: what is wrong' for the first value in a decoded body that JSON-RPC to Node cannot carry, if any."""
    if isinstance(value, str):
        problem = _text_problem(value)
    elif isinstance(value, (dict, list)):
        if depth >= MAX_BODY_DEPTH:
            return f"{path.split('.')[0] or 'body'}: nested deeper than {MAX_BODY_DEPTH} levels"
        if isinstance(value, list) and _plain_integers(value):
            return None
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            key_problem = _text_problem(key) if isinstance(key, str) else None
            if key_problem:
                return f"{path or 'body'}: a key {key_problem}"
            found = _unsendable(item, f"{path}.{key}" if path else str(key), depth + 1)
            if found:
                return found
        return None
    else:
        problem = _number_problem(value)
    return f"{path or 'body'}: {problem}" if problem else None


def decode_body(row: Any, decoded_json: bool = False) -> dict:
    """One TorchServe input row as an IncomingRequest. ``decoded_json``: TorchServe's worker has
    decoded the body already (application/json), so a string is the JSON string the client sent.

    TorchServe's worker has already decoded an application/json body with
    Python's json module, which accepts NaN, 1e999, integers of any size, lone
    surrogates ("\\ud800") and deep nesting; JSON-RPC cannot carry them (NaN would
    arrive in Node as null, i.e. "absent"; the others cannot be encoded at all), so
    they are refused here, each request alone.
    """
    body = row.get("body") if isinstance(row, dict) else None
    if body is None and isinstance(row, dict):
        body = row.get("data")
    if isinstance(body, (bytes, bytearray)):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            return {"body": None, "body_error": "body: is not valid UTF-8"}
    if isinstance(body, str) and not decoded_json:
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            return {"body": None, "body_error": f"body: is not valid JSON ({error})"}
    problem = _unsendable(body)
    if problem:
        return {"body": None, "body_error": problem}
    return {"body": body}


def decoded_by_torchserve(context, index: int) -> bool:
    """Whether TorchServe's worker decoded the row's body as JSON: it does for exactly `application/json`
    (and hands over the raw bytes when that fails)."""
    processors = getattr(context, "request_processor", None)
    header = context.get_request_header(index, "body") if processors and index < len(processors) else None
    return isinstance(header, dict) and header.get("content-type") == "application/json"


def with_url_path(request: dict, context, index: int) -> dict:
    """Adds the row's sub-path (TorchServe's `url_path` header: what follows
    `/predictions/<model>/<version>/`), which picks the handler route that answers."""
    processors = getattr(context, "request_processor", None)
    url_path = context.get_request_header(index, "url_path") if processors and index < len(processors) else None
    if url_path:
        request["url_path"] = url_path
    return request

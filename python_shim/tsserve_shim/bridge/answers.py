"""The answers to the shim's requests: the error an answer carries, decoded once here, and the error
answers the shim makes itself when no child can take or finish a request."""

from __future__ import annotations

from typing import Any

from .errors import CONNECTION_CLOSED, INTERNAL_ERROR, RpcError


def error_of(answer: dict, method: str = "the request") -> RpcError | None:
    """The error an answer carries (a malformed one as INTERNAL_ERROR), or None when it carries a result."""
    if "error" not in answer:
        return None
    error = answer["error"]
    if not isinstance(error, dict):
        return RpcError(INTERNAL_ERROR, f"malformed error answer to {method}: {str(error)[:200]}")
    code, message = error.get("code"), error.get("message")
    code = code if type(code) is int else INTERNAL_ERROR
    return RpcError(code, message if isinstance(message, str) else str(message or ""), error.get("data"))


def result_of(answer: dict, method: str) -> Any:
    """The result of an answer to one of our requests; an error answer (well-formed or not) raises RpcError."""
    error = error_of(answer, method)
    if error is not None:
        raise error
    return answer.get("result")


def closed(answer: dict) -> bool:
    """Whether an answer says the child died before it answered (or none is running)."""
    error = error_of(answer)
    return error is not None and error.code == CONNECTION_CLOSED


def unavailable(answer: dict) -> bool:
    """Whether an answer says no child was running to take the request (one failed to start; the bridge retries)."""
    error = error_of(answer)
    if error is None or error.code != CONNECTION_CLOSED:
        return False
    return isinstance(error.data, dict) and error.data.get("unavailable") is True


def closed_answer(request_id: Any, message: str, data: dict | None = None) -> dict:
    """The answer to a request whose child died first (or none runs: ``data`` says so)."""
    error = RpcError(CONNECTION_CLOSED, message, data).to_json()
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def unavailable_answer(start_failure: str) -> dict:
    """The answer to a request that no child can take: the last one failed to start."""
    message = f"the handler process could not be started ({start_failure}); the shim keeps retrying"
    return closed_answer(None, message, {"unavailable": True})

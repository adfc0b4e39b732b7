"""Error codes shared with src/protocol/errors.ts, and the shim's local errors."""
from __future__ import annotations

from typing import Any, Optional

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
PROTOCOL_VERSION_MISMATCH = -32001
MESSAGE_TOO_LARGE = -32002
CONNECTION_CLOSED = -32003
NOT_INITIALIZED = -32004
HANDLER_ERROR = -32005


class RpcError(Exception):
    """A protocol error: crosses the wire as {code, message, data}."""

    def __init__(self, code: int, message: str, data: Optional[Any] = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class PeerClosed(Exception):
    """The Node process closed its end of the channel (it exited or crashed)."""


class PeerTimeout(Exception):
    """The Node process did not answer before the deadline."""


class ShimConfigError(Exception):
    """The model config or the environment cannot serve this model (a clear message for the model log)."""

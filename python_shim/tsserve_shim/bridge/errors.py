"""Error codes, read from the schema exported from src/protocol/errors.ts, and the shim's local errors."""

from __future__ import annotations

from typing import Any

from .protocol import schema

_CODES = schema()["errorCodes"]
PARSE_ERROR: int = _CODES["ParseError"]
INVALID_REQUEST: int = _CODES["InvalidRequest"]
METHOD_NOT_FOUND: int = _CODES["MethodNotFound"]
INVALID_PARAMS: int = _CODES["InvalidParams"]
INTERNAL_ERROR: int = _CODES["InternalError"]
PROTOCOL_VERSION_MISMATCH: int = _CODES["ProtocolVersionMismatch"]
MESSAGE_TOO_LARGE: int = _CODES["MessageTooLarge"]
CONNECTION_CLOSED: int = _CODES["ConnectionClosed"]
NOT_INITIALIZED: int = _CODES["NotInitialized"]
HANDLER_ERROR: int = _CODES["HandlerError"]


class RpcError(Exception):
    """A protocol error: crosses the wire as {code, message, data}."""

    def __init__(self, code: int, message: str, data: Any | None = None) -> None:
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

"""A test's request to the peer, made as the bridge makes its own: ``request_async``, then the
bridge loop's turns (``serve_once``) until the answer arrives (``Peer.request_and_serve``)."""

from __future__ import annotations

import os
from typing import Any

from tsserve_shim.bridge.answers import result_of
from tsserve_shim.bridge.rpc import Peer

# Nothing is posted to a test's loop, so its wake-up pipe is never written: one for every call.
_WAKE_READ, _WAKE_WRITE = os.pipe()


def call(peer: Peer, method: str, params: dict, timeout: float = 30.0) -> Any:
    """The answer's result; RpcError for an error answer, PeerClosed when the child exits first,
    PeerTimeout when nothing comes within ``timeout`` seconds."""
    return result_of(peer.request_and_serve(method, params, _WAKE_READ, lambda: None, timeout), method)

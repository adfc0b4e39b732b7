"""A test's request to the peer, made as the bridge makes its own: ``request_async``, then the
bridge loop's turns (``serve_once``) until the answer arrives."""
from __future__ import annotations

import os
import time
from typing import Any

from tsserve_shim.bridge.errors import PeerClosed, PeerTimeout
from tsserve_shim.bridge.rpc import Peer, result_of


# Nothing is posted to a test's loop, so its wake-up pipe is never written: one for every call.
_WAKE_READ, _WAKE_WRITE = os.pipe()


def call(peer: Peer, method: str, params: dict, timeout: float = 30.0) -> Any:
    """The answer's result; RpcError for an error answer, PeerClosed when the child exits first,
    PeerTimeout when nothing comes within ``timeout`` seconds."""
    answers: list[dict] = []
    peer.request_async(method, params, answers.append)
    deadline = time.monotonic() + timeout
    while not answers:
        left = deadline - time.monotonic()
        if left <= 0:
            raise PeerTimeout(f"{method} got no answer within {timeout} s")
        if not peer.serve_once(_WAKE_READ, lambda: None, timeout=left) and not answers:
            raise PeerClosed(f"the handler process exited while {method} was pending")
    return result_of(answers[0], method)

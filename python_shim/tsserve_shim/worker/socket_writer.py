"""One writer per worker socket.

TorchServe 0.12's async worker writes whole answers from its `send_responses`
thread, while the shim writes stream chunks (`send_intermediate_predict_response`)
from the event loop's thread, both with `sendall` on the same socket. `sendall`
of a large frame is many `send` calls, so two writers interleave their bytes and
the frontend reads text as a frame length (TooLongFrameException), then drops the
worker with everything in flight. Every frame, chunk, answer or retirement, is
one `sendall` call of TorchServe's, so serializing `sendall` on the socket object
itself makes each frame go out whole, whichever thread writes it.
"""
from __future__ import annotations

import socket
import threading


class OneWriterSocket(socket.socket):
    """The worker's socket with `sendall` under one lock (a worker process has one socket)."""

    __slots__ = ()
    _write_lock = threading.Lock()

    def sendall(self, data, flags: int = 0) -> None:  # noqa: D102
        with OneWriterSocket._write_lock:
            super().sendall(data, flags)


def one_writer(sock) -> None:
    """Make every later `sendall` on ``sock`` (the object TorchServe and the shim share) take the lock."""
    if isinstance(sock, socket.socket) and not isinstance(sock, OneWriterSocket):
        sock.__class__ = OneWriterSocket

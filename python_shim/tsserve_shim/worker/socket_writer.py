"""One writer per socket in a worker process.

TorchServe 0.12's async worker writes whole answers from its `send_responses`
thread, while the shim writes stream chunks (`send_intermediate_predict_response`)
from the event loop's thread, both with `sendall` on the same socket. `sendall`
of a large frame is many `send` calls, so two writers interleave their bytes and
the frontend reads text as a frame length (TooLongFrameException), then drops the
worker with everything in flight.

Every frame, chunk, answer or retirement, is one `sendall` call, so `sendall`
takes a lock of its socket. It has to be `socket.socket`'s own method:
`send_responses` evaluates `cl_socket.sendall` before it blocks for its first
answer, so a lock put on the socket object when the first request arrives came
too late for that answer (a worker's first answer beside a stream could still
interleave). `install()` runs when the shim is imported, before TorchServe
starts that thread. The worker's socket, once marked by `one_writer`, also has
each frame's layout checked (frames.py): a malformed frame is logged with what
is wrong, so that a dropped worker says why from its own side.
"""

from __future__ import annotations

import logging
import socket
import threading
import weakref

from .frames import frame_problem

logger = logging.getLogger(__name__)

_locks: weakref.WeakKeyDictionary[socket.socket, threading.Lock] = weakref.WeakKeyDictionary()
_worker_sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
_new_lock = threading.Lock()


def _lock_of(sock: socket.socket) -> threading.Lock:
    lock = _locks.get(sock)
    if lock is None:
        with _new_lock:
            lock = _locks.setdefault(sock, threading.Lock())
    return lock


def _sendall_whole(self: socket.socket, data, flags: int = 0) -> None:
    if self in _worker_sockets:
        problem = frame_problem(data)
        if problem is not None:
            logger.error(
                "tsserve: a malformed reply frame (%d bytes, from thread %s): %s; it starts %s",
                len(data),
                threading.current_thread().name,
                problem,
                bytes(data[:64]).hex(),
            )
    with _lock_of(self):
        super(socket.socket, self).sendall(data, flags)  # the C socket's own: what socket.socket inherits


def install() -> None:
    """Make `sendall` of every socket of this process take that socket's lock (idempotent)."""
    socket.socket.sendall = _sendall_whole  # type: ignore[method-assign]


def one_writer(sock) -> None:
    """Mark ``sock`` as the worker's socket (the one TorchServe and the shim share): its frames are checked."""
    install()
    if isinstance(sock, socket.socket):
        _worker_sockets.add(sock)


install()

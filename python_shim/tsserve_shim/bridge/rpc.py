"""The shim's JSON-RPC peer over the Node child's stdin/stdout.

One thread serves the peer (the bridge loop, ``serve_forever``): it reads the child's messages,
answers the child's requests (generate, tokenize, detokenize) and notifications (stream chunks),
delivers the answers to the shim's own requests (``request_async``) to their callbacks, runs the
work other threads post to it, and writes its output without blocking, so that both sides writing
large messages at once cannot deadlock on full pipes.
"""

from __future__ import annotations

import collections
import errno
import os
import select
import sys
import time
from collections.abc import Callable
from typing import Any

from .answers import closed_answer
from .errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    MESSAGE_TOO_LARGE,
    METHOD_NOT_FOUND,
    PeerClosed,
    PeerTimeout,
    RpcError,
)
from .framing import DEFAULT_MAX_MESSAGE_BYTES, Invalid, LineReader, Oversize, Unencodable, encode_message

RequestHandler = Callable[[dict], Any]
NotificationHandler = Callable[[dict], None]
AnswerHandler = Callable[[dict], None]


class Deferred:
    """What a request handler returns to answer later, with Peer.reply (continuous batching's generate)."""

    __slots__ = ("request_id",)

    def __init__(self) -> None:
        self.request_id: Any = None


_READ_SIZE = 1 << 20
# Linux pipes hold 64 KiB by default: a 1 MB message then costs 16 wake-ups of
# each side. 1 MiB is the unprivileged maximum (/proc/sys/fs/pipe-max-size).
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031


def grow_pipe(fd: int, size: int = _PIPE_SIZE) -> int:
    """Best effort: raise a pipe's capacity (Linux only); returns the new size, or 0."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        import fcntl

        return fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", _F_SETPIPE_SZ), size)
    except (OSError, ValueError):
        return 0


def _closed_answer(request_id: int, method: str) -> dict:
    return closed_answer(request_id, f"the handler process exited while {method} was pending")


def _unencodable_message(what: str, error: Unencodable) -> str:
    return f"{what} cannot be sent to the handler process: {error}"


class Peer:
    def __init__(
        self,
        read_fd: int,
        write_fd: int,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        on_noise: Callable[[str], None] = lambda _: None,
    ) -> None:
        self._read_fd = read_fd
        self._write_fd = write_fd
        os.set_blocking(write_fd, False)
        grow_pipe(read_fd)
        grow_pipe(write_fd)
        self._reader = LineReader(max_message_bytes)
        # Encoded messages not yet (fully) written; the first one from _sent on.
        self._outgoing: collections.deque[bytes] = collections.deque()
        self._sent = 0
        self._next_id = 1
        self._callbacks: dict[int, AnswerHandler] = {}
        self._requests: dict[str, RequestHandler] = {}
        self._notifications: dict[str, NotificationHandler] = {}
        self._on_noise = on_noise
        self._closed = False
        self._frames: collections.deque = collections.deque()

    @property
    def closed(self) -> bool:
        return self._closed

    def on_request(self, method: str, handler: RequestHandler) -> None:
        self._requests[method] = handler

    def on_notification(self, method: str, handler: NotificationHandler) -> None:
        self._notifications[method] = handler

    def request_async(self, method: str, params: dict, on_answer: AnswerHandler) -> int:
        """Send a request; ``on_answer(message)`` gets the whole answer (``result`` or ``error``) when it arrives
        (or an error answer when the peer closes first). For a peer run by serve_forever. Returns the request's id."""
        request_id = self._next_id
        self._next_id += 1
        if self._closed:
            on_answer(_closed_answer(request_id, method))
            return request_id
        try:
            self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        except Unencodable as error:
            message = _unencodable_message(f"the params of {method}", error)
            on_answer({"jsonrpc": "2.0", "id": request_id, "error": {"code": INVALID_PARAMS, "message": message}})
            return request_id
        self._callbacks[request_id] = on_answer
        return request_id

    def request_and_serve(self, method: str, params: dict, wake_fd: int, run_posted: Callable[[], None], timeout: float) -> dict:
        """Send a request and serve the peer until its answer comes (its requests answered and ``run_posted()`` run
        meanwhile, as serve_forever does): for a caller on the serving thread that needs the answer before it goes on
        (the handshake). PeerTimeout after ``timeout`` seconds; PeerClosed when the peer closes first."""
        answers: list[dict] = []
        self.request_async(method, params, answers.append)
        deadline = time.monotonic() + timeout
        while not answers:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PeerTimeout(f"{method} got no answer within {timeout} s")
            if not self.serve_once(wake_fd, run_posted, timeout=left) and not answers:
                raise PeerClosed(f"the handler process exited while {method} was pending")
        return answers[0]

    def awaiting(self, request_id: int) -> bool:
        """Whether a request sent with request_async is still unanswered."""
        return not self._closed and request_id in self._callbacks

    def reply(self, deferred: Deferred, result: Any) -> None:
        """Answer a request whose handler returned ``deferred``."""
        self._send_result(deferred.request_id, result)

    def reply_error(self, deferred: Deferred, error: RpcError) -> None:
        """Answer a request whose handler returned ``deferred`` with an error."""
        self._send({"jsonrpc": "2.0", "id": deferred.request_id, "error": error.to_json()})

    def serve_forever(self, wake_fd: int, run_posted: Callable[[], None]) -> None:
        """Serve the peer until it closes: its messages, and ``run_posted()`` whenever ``wake_fd`` is readable
        (other threads' work for this peer: all its reads and writes stay on this one thread)."""
        while self.serve_once(wake_fd, run_posted):
            pass
        for request_id, on_answer in list(self._callbacks.items()):
            on_answer(_closed_answer(request_id, "the request"))
        self._callbacks.clear()

    def serve_once(self, wake_fd: int, run_posted: Callable[[], None], timeout: float | None = None) -> bool:
        """One turn of serve_forever (waiting at most ``timeout`` seconds for something to do); False once the peer closed."""
        if self._closed:
            return False
        while self._frames:
            self._dispatch(self._frames.popleft())
        writers = [self._write_fd] if self._outgoing else []
        readable, writable, _ = select.select([self._read_fd, wake_fd], writers, [], timeout)
        if wake_fd in readable:
            try:
                os.read(wake_fd, 4096)
            except BlockingIOError:
                pass
            run_posted()
        if writable:
            self._flush()
        if self._read_fd in readable and not self._read_available():
            return False
        while self._frames:  # what was just read is served now, not after the next wait
            self._dispatch(self._frames.popleft())
        return not self._closed

    def notify(self, method: str, params: dict) -> None:
        try:
            self._send({"jsonrpc": "2.0", "method": method, "params": params})
        except Unencodable as error:
            self._on_noise(f"dropped a {method} notification: {_unencodable_message('it', error)}")

    def close(self) -> None:
        self._closed = True

    # ------------------------------------------------------------ internals

    def _send(self, message: dict) -> None:
        """Raises Unencodable (and sends nothing) for a message JSON cannot carry."""
        if self._closed:
            return  # a late answer to a child that is gone: its pipe may already be another's
        self._write(encode_message(message))

    def _write(self, line: bytes) -> None:
        if self._closed:
            return
        self._outgoing.append(line)
        self._flush()

    def _send_result(self, request_id: Any, result: Any) -> None:
        """The answer to one of the peer's requests; a result JSON cannot carry is answered with an error instead."""
        try:
            self._send({"jsonrpc": "2.0", "id": request_id, "result": result})
        except Unencodable as error:
            self._send(
                {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "error": {"code": INTERNAL_ERROR, "message": _unencodable_message("the result", error)},
                }
            )

    def _flush(self) -> None:
        # Writes from a memoryview offset: a partly written message is never copied or shifted.
        outgoing = self._outgoing
        while outgoing:
            head = outgoing[0]
            try:
                written = os.write(self._write_fd, memoryview(head)[self._sent :] if self._sent else head)
            except BlockingIOError:
                return
            except (BrokenPipeError, OSError) as error:
                if isinstance(error, OSError) and error.errno not in (errno.EPIPE, errno.EBADF, errno.EINVAL):
                    raise
                outgoing.clear()
                self._sent = 0
                self._closed = True
                return
            self._sent += written
            if self._sent >= len(head):
                outgoing.popleft()
                self._sent = 0

    def _read_available(self) -> bool:
        """Queue the frames of one read; False at end of stream."""
        try:
            chunk = os.read(self._read_fd, _READ_SIZE)
        except OSError:
            chunk = b""
        if not chunk:
            self._closed = True
            return False
        self._frames.extend(self._reader.push(chunk))
        return True

    def _dispatch(self, frame) -> None:
        if isinstance(frame, Oversize):
            self._on_noise(f"dropped a message of {frame.size} bytes (over the size cap)")
            self._send(
                {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {"code": MESSAGE_TOO_LARGE, "message": f"message of {frame.size} bytes exceeds the size cap"},
                }
            )
            return
        if isinstance(frame, Invalid):
            self._on_noise(f"not JSON: {frame.line}")
            return
        message = frame.value
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            self._on_noise(f"not a JSON-RPC message: {str(message)[:200]}")
            return
        if "method" in message:
            if "id" in message:
                self._serve_request(message)
            else:
                self._serve_notification(message)
        elif type(message.get("id")) is int and message["id"] in self._callbacks:
            self._callbacks.pop(message["id"])(message)
        elif "error" in message:
            error = message["error"]
            self._on_noise(f"peer error: {str(error.get('message') if isinstance(error, dict) else error)[:200]}")
        else:
            self._on_noise(f"an answer to no request of ours: {str(message)[:200]}")

    def _serve_request(self, message: dict) -> None:
        method = message["method"]
        handler = self._requests.get(method) if isinstance(method, str) else None
        try:
            if not isinstance(method, str):
                raise RpcError(INVALID_REQUEST, "method must be a string")
            if handler is None:
                raise RpcError(METHOD_NOT_FOUND, f"unknown method {message['method']}")
            params = message.get("params")
            if not isinstance(params, dict):
                raise RpcError(INVALID_PARAMS, f"params of {message['method']} must be an object")
            result = handler(params)
            if isinstance(result, Deferred):
                result.request_id = message["id"]
                return
            self._send_result(message["id"], result)
            return
        except RpcError as error:
            reply = {"jsonrpc": "2.0", "id": message["id"], "error": error.to_json()}
        except Exception as error:  # the handler's failure is the peer's answer, not our crash
            reply = {
                "jsonrpc": "2.0",
                "id": message["id"],
                "error": {"code": INTERNAL_ERROR, "message": f"{type(error).__name__}: {error}"},
            }
        self._send(reply)

    def _serve_notification(self, message: dict) -> None:
        method = message["method"]
        handler = self._notifications.get(method) if isinstance(method, str) else None
        params = message.get("params")
        if handler is None or not isinstance(params, dict):
            self._on_noise(f"ignored notification: {str(message)[:200]}")
            return
        try:
            handler(params)
        except Exception as error:
            self._on_noise(f"notification {method} failed: {type(error).__name__}: {error}")

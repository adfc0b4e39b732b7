"""The Node child's channel under continuous batching (TorchServe's asyncCommunication).

TorchServe then calls the shim's handle for each request as it arrives, on
an asyncio loop, with many requests in flight. One bridge thread owns the
channel: it sends each request's `handle` to Node, serves Node's calls back
(generate goes to the Scheduler and is answered when its rows are done;
tokenize/detokenize at once) and hands answers back to the waiting coroutines.
Other threads never touch the channel: they post work to the bridge thread.
"""
from __future__ import annotations

import collections
import logging
import os
import threading
import time
from typing import Callable, Deque, Optional

from . import protocol
from .deadline import Deadline
from .rpc import Deferred, Peer
from .scheduler import Scheduler

log = logging.getLogger(__name__)

DeadlineFactory = Callable[[float], Deadline]


class AsyncBridge:
    def __init__(self, peer: Peer, scheduler: Scheduler, deadline_for: DeadlineFactory) -> None:
        self.peer = peer
        self.scheduler = scheduler
        self.deadline_for = deadline_for
        self._posted: Deque[Callable[[], None]] = collections.deque()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        peer.on_request(protocol.GENERATE, self._serve_generate)
        self._thread = threading.Thread(target=self._run, name="tsserve-bridge", daemon=True)

    def start(self) -> "AsyncBridge":
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self.peer.closed

    def post(self, work: Callable[[], None]) -> None:
        """Run ``work`` on the bridge thread."""
        self._posted.append(work)
        try:
            os.write(self._wake_write, b"!")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already

    def request(self, method: str, params: dict, on_answer: Callable[[dict], None]) -> None:
        self.post(lambda: self.peer.request_async(method, params, on_answer))

    def _run(self) -> None:
        try:
            self.peer.serve_forever(self._wake_read, self._run_posted)
        except Exception:  # noqa: BLE001
            log.exception("tsserve: the bridge to the handler process failed")
        finally:
            self.peer.close()

    def _run_posted(self) -> None:
        while self._posted:
            self._posted.popleft()()

    def _serve_generate(self, params: dict) -> Deferred:
        deferred = Deferred()
        call_id = params["call_id"]

        def on_delta(request_index: int, sequence_index: int, text: str, logprobs: Optional[dict]) -> None:
            delta = {"call_id": call_id, "request_index": request_index, "sequence_index": sequence_index, "text": text, "logprobs": logprobs}
            self.post(lambda: self.peer.notify(protocol.GENERATION_DELTA, delta))

        def done(outcomes: list) -> None:
            self.post(lambda: self.peer.reply(deferred, {"outcomes": outcomes}))

        wants_stream = any(request.get("stream") for request in params["requests"])
        self.scheduler.submit(params["requests"], done, on_delta if wants_stream else None, self.deadline_for(time.monotonic()))
        return deferred

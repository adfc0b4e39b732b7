"""The work other threads post to the bridge thread, and the pipe that wakes it.

Every read and write of a child's channel happens on the bridge thread, so other threads (the worker's,
the engine's, the tokenizer's) post their work here. While a child's handshake runs (its initialize may
call generate: a warm-up), the work posted for that child's channel is run by the handshake apart from
the rest: requests wait for the child to be up, the warm-up's answers cannot.
"""

from __future__ import annotations

import collections
import os
import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .rpc import Peer

Work = Callable[[], None]


class Mailbox:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._posted: collections.deque[Work] = collections.deque()
        self._handshake_peer: Peer | None = None
        self._handshake_posted: collections.deque[Work] = collections.deque()
        self.wake_fd, self._wake_write = os.pipe()
        os.set_blocking(self.wake_fd, False)
        os.set_blocking(self._wake_write, False)
        self.stopping = False  # the bridge thread runs no more work and ends

    def post(self, work: Work, peer: Peer | None = None) -> None:
        """Run ``work`` on the bridge thread (``peer``: the channel it writes to, when it is one child's)."""
        with self._lock:
            if peer is not None and peer is self._handshake_peer:
                self._handshake_posted.append(work)
            else:
                self._posted.append(work)
        self.wake()

    def wake(self) -> None:
        try:
            os.write(self._wake_write, b"!")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already

    def stop(self) -> None:
        self.stopping = True
        self.wake()

    def run_posted(self) -> None:
        while self._posted:
            self._posted.popleft()()

    def run_handshake_posted(self) -> None:
        while True:
            with self._lock:
                if not self._handshake_posted:
                    return
                work = self._handshake_posted.popleft()
            work()

    @contextmanager
    def handshaking(self, peer: Peer) -> Iterator[None]:
        """While the block runs, work posted for ``peer`` waits for run_handshake_posted; what is left of it then
        goes on with the rest."""
        with self._lock:
            self._handshake_peer = peer
        try:
            yield
        finally:
            with self._lock:
                self._handshake_peer = None
                self._posted.extend(self._handshake_posted)
                self._handshake_posted.clear()
            self.wake()  # the rest's wake-up may have been read by the handshake's turns

    def serve_for(self, seconds: float) -> None:
        """Run posted work as it comes for ``seconds``, or until stopping (no child runs meanwhile)."""
        until = time.monotonic() + seconds
        while not self.stopping and (left := until - time.monotonic()) > 0:
            readable, _, _ = select.select([self.wake_fd], [], [], left)
            if readable:
                self._drain_wakes()
            self.run_posted()

    def _drain_wakes(self) -> None:
        try:
            os.read(self.wake_fd, 4096)
        except BlockingIOError:
            pass

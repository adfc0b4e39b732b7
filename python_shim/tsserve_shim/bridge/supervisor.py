"""Keeping one handshaken Node child running, on the bridge thread.

Requests go out through the supervisor, which counts each child's calls in flight. When the child dies, every
call it held is answered with a CONNECTION_CLOSED error naming how it ended, and a new child is started and
handshaken (retried with back-off; meanwhile each request is answered at once with why none runs). When the
bundle file is replaced (`tsserve dev`, `register --replace`), the next `handle` that finds the child idle starts
a child on the new bundle first: the model stays loaded.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

from . import protocol
from .answers import closed, unavailable_answer
from .child import Attach, ChildSpec, RunningChild, bundle_stamp, describe_failure, start_child
from .mailbox import Mailbox
from .node_process import NodeProcess
from .rpc import Peer

log = logging.getLogger(__name__)

# Waits between attempts to start a child after one failed to start: doubling, then steady.
RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)
Answer = Callable[[dict], None]


class Supervisor:
    def __init__(self, spec: ChildSpec, mailbox: Mailbox, attach: Attach, forget: Callable[[int], None]) -> None:
        self.spec = spec
        self.mailbox = mailbox
        self._attach = attach
        self._forget = forget  # a child (its pid) is gone: the calls it had open are dropped
        self.current: RunningChild | None = None
        self.restarts = 0
        self.start_failure: str | None = None  # why the last attempt to start a child failed, while none runs
        self._calls_in_flight: collections.Counter = collections.Counter()  # child pid -> requests sent, not answered
        self._bundle_stamp: tuple | None = None  # the bundle file last started (or last tried, when that failed)

    def start(self) -> None:
        """The first child (a failure raises: it is the worker's load error)."""
        self._adopt(self._start_child())

    def send(self, method: str, params: dict, on_answer: Answer) -> tuple[Peer | None, int | None]:
        """Send a request to the child (on the bridge thread): the channel that carried it and its id,
        (None, None) when none runs (``on_answer`` then has its answer already)."""
        if self.start_failure is not None:
            on_answer(unavailable_answer(self.start_failure))
            return None, None
        if method == protocol.HANDLE:
            self._swap_if_rebuilt()
        child = self.current
        self._calls_in_flight[child.pid] += 1
        return child.peer, child.peer.request_async(method, params, self._answerer(child, method, on_answer))

    def _answerer(self, child: RunningChild, method: str, on_answer: Answer) -> Answer:
        def answered(message: dict) -> None:
            self._calls_in_flight[child.pid] -= 1
            try:
                on_answer(_naming_exit(child.process, message))
            except Exception:
                log.exception("tsserve: delivering the answer to %s failed", method)

        return answered

    def kill(self) -> None:
        """For a child that stopped answering: the bridge thread then fails what it held and starts another."""
        if self.current is not None:
            log.error("tsserve: the handler process (pid %d) stopped answering; killing it", self.current.pid)
            self.current.process.kill()

    def stop_child(self) -> None:
        if self.current is not None:
            self.current.process.stop(grace=1.0)

    # ------------------------------------------------------------ a rebuilt bundle

    def _swap_if_rebuilt(self) -> None:
        """A new bundle file: start a child on it and retire the old one, if that holds no call (a call in
        flight finishes on the code it started with; the swap then waits for a call that finds it idle)."""
        stamp = bundle_stamp(self.spec.bundle)
        old = self.current
        if stamp is None or stamp == self._bundle_stamp or self._calls_in_flight[old.pid] > 0:
            return
        started = time.monotonic()
        try:
            self._adopt(self._start_child())
        except Exception as error:
            log.error("tsserve: the new handler bundle failed to start; the running one keeps serving: %s", describe_failure(error))
            self._bundle_stamp = stamp  # not retried on every call: the next rebuild tries again
            return
        self._retire_replaced(old)
        log.info(
            "tsserve: handler bundle replaced in %.0f ms (node pid %d -> %d); the model stayed loaded",
            (time.monotonic() - started) * 1000,
            old.pid,
            self.current.pid,
        )

    def _retire_replaced(self, old: RunningChild) -> None:
        old.peer.close()  # serve_forever returns to the bridge loop, which serves the new peer
        self._forget(old.pid)
        self._calls_in_flight.pop(old.pid, None)
        threading.Thread(target=old.process.stop, kwargs={"grace": 1.0}, name="tsserve-old-child", daemon=True).start()

    # ------------------------------------------------------------ a dead child

    def replace(self) -> None:
        """The child is gone (its calls were answered CONNECTION_CLOSED): drop its calls, start another,
        retrying with back-off; meanwhile each request is answered at once with why none runs."""
        try:
            self._retire_dead()
        except Exception:
            log.exception("tsserve: cleaning up after the handler process failed")
        attempt = 0
        while not self.mailbox.stopping:
            try:
                self._adopt(self._start_child())
            except Exception as error:
                self.start_failure = describe_failure(error)
                log.error("tsserve: could not restart the handler process: %s", self.start_failure)
                self.mailbox.serve_for(RESTART_BACKOFF_S[min(attempt, len(RESTART_BACKOFF_S) - 1)])
                attempt += 1
                continue
            self.start_failure = None
            self.restarts += 1
            return

    def _retire_dead(self) -> None:
        process = self.current.process
        process.reap()
        log.error("tsserve: handler process %s; stderr tail:\n%s", process.exit_description(), process.stderr_tail())
        process.stop(grace=0.5)
        self._forget(process.pid)

    # ------------------------------------------------------------ starting one

    def _start_child(self) -> RunningChild:
        return start_child(self.spec, self.mailbox, self._attach)

    def _adopt(self, child: RunningChild) -> None:
        self.current = child
        self._bundle_stamp = child.bundle_stamp


def _naming_exit(process: NodeProcess, message: dict) -> dict:
    """A CONNECTION_CLOSED answer says how the child ended (once it can be reaped); any other answer as it is."""
    if not closed(message):
        return message
    process.reap()
    return {**message, "error": {**message["error"], "message": process.exit_description()}}

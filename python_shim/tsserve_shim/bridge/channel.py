"""The bridge thread: it owns the Node child and its channel, and is what the worker talks to.

Every read and write of the channel happens on this one thread; other threads post work to it
(mailbox.py). It sends the worker's `handle` calls to Node and hands the answers back, keeping a child
running (supervisor.py); it serves Node's calls into the model (model_calls.py) and passes stream chunks
on. The worker cancels a `handle` whose request is over (end_batch) with a `notifications/cancelled`
naming the request's id: Node's AbortSignal for it aborts, and the engine drops the rows of every
generate call that handle opened.

Nothing here knows torch: the model side comes in as the engine contract (engine/contract.py's
`ServingEngine`, which imports no torch).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..engine.contract import ServingEngine
from . import protocol
from .answers import closed, unavailable
from .child import ChildSpec
from .mailbox import Mailbox
from .model_calls import ModelCalls
from .node_process import NodeProcess
from .rpc import Peer
from .supervisor import Answer, Supervisor

__all__ = ["Bridge", "ChildSpec", "Ticket", "closed", "unavailable"]

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 1.0


@dataclass
class Ticket:
    """A request sent with Bridge.request: which child's channel carried it, under which id (for a cancel)."""

    peer: Peer | None = None
    request_id: int | None = None


class Bridge:
    def __init__(
        self,
        spec: ChildSpec,
        engine: ServingEngine,
        *,
        deadline_for: Callable[[int | None], Any],
        on_chunk: Callable[[dict], None],
        on_generated: Callable[[int | None, list, list[str]], None] = lambda batch_id, outcomes, stages: None,
        refuse_generate: Callable[[int | None, list], Any] = lambda batch_id, requests: None,
        refuse_text: Callable[[str, dict], str | None] = lambda method, params: None,
        trace_for: Callable[[int | None], str | None] = lambda batch_id: None,
    ) -> None:
        self.on_chunk = on_chunk  # StreamChunkParams, on the bridge thread
        self.mailbox = Mailbox()
        self.model_calls = ModelCalls(
            engine,
            self.mailbox.post,
            deadline_for=deadline_for,
            on_generated=on_generated,
            refuse_generate=refuse_generate,
            refuse_text=refuse_text,
            trace_for=trace_for,
        )
        self.supervisor = Supervisor(spec, self.mailbox, self._attach, self.model_calls.forget_child)
        self._thread = threading.Thread(target=self._run, name="tsserve-bridge", daemon=True)

    def start(self) -> Bridge:
        """Start and handshake the first child here (a failure is the worker's load error), then serve it on the bridge thread."""
        self.supervisor.start()
        self._thread.start()
        return self

    def request(self, method: str, params: dict, on_answer: Answer) -> Ticket:
        """Send a request to the child; ``on_answer(message)`` gets its answer on the bridge thread
        (a CONNECTION_CLOSED error naming how the child ended, when it died first). The ticket names it to end_batch."""
        ticket = Ticket()

        def send() -> None:
            ticket.peer, ticket.request_id = self.supervisor.send(method, params, on_answer)

        self.mailbox.post(send)
        return ticket

    def end_batch(self, batch_id: int, ticket: Ticket | None = None, reason: str | None = None) -> None:
        """A handle call's request is over. With ``reason`` (it ran out of time, its client went away), Node is told to
        cancel the handle (its AbortSignal aborts) if it has not answered yet; either way the engine drops the rows of
        every generate call the handle opened that is still running."""

        def end() -> None:
            if reason is not None and ticket is not None:
                self._cancel_handle(ticket, reason)
            self.model_calls.cancel_batch(batch_id)

        self.mailbox.post(end)

    def kill_child(self) -> None:
        """For a child that stopped answering: the bridge thread then fails what it held and starts another."""
        self.supervisor.kill()

    def stop(self) -> None:
        """Ask the child to shut down (it then exits 0 at stdin's end), then stop it."""
        if self._thread.is_alive() and self.supervisor.start_failure is None:
            answered = threading.Event()
            self.request(protocol.SHUTDOWN, {}, lambda message: answered.set())
            answered.wait(SHUTDOWN_TIMEOUT_S)
        self.mailbox.stop()
        self.model_calls.shutdown()
        self.supervisor.stop_child()

    @property
    def child(self) -> NodeProcess | None:
        return self.supervisor.current.process if self.supervisor.current is not None else None

    @property
    def child_pid(self) -> int | None:
        return self.child.pid if self.child is not None else None

    @property
    def restarts(self) -> int:
        return self.supervisor.restarts

    @property
    def start_failure(self) -> str | None:
        return self.supervisor.start_failure

    # ------------------------------------------------------------ on the bridge thread

    def _attach(self, peer: Peer, pid: int) -> None:
        self.model_calls.serve_on(peer, pid)
        peer.on_notification(protocol.STREAM_CHUNK, self.on_chunk)

    def _cancel_handle(self, ticket: Ticket, reason: str) -> None:
        """Node cancels the handle, if the running child still owes its answer."""
        peer = ticket.peer
        current = self.supervisor.current
        if peer is not None and current is not None and peer is current.peer and peer.awaiting(ticket.request_id):
            peer.notify(protocol.CANCELLED, {"request_id": ticket.request_id, "reason": reason})

    def _run(self) -> None:
        while not self.mailbox.stopping:
            peer = self.supervisor.current.peer
            try:
                peer.serve_forever(self.mailbox.wake_fd, self.mailbox.run_posted)
            except Exception:
                log.exception("tsserve: the channel to the handler process failed")
            peer.close()
            if self.mailbox.stopping:
                break
            if self.supervisor.current.peer is peer:  # else a rebuilt bundle's child took over
                self.supervisor.replace()

"""The bridge thread: it owns the Node child and its channel.

Every read and write of the channel happens on this one thread; other threads
post work to it. It sends the worker's `handle` calls to Node and hands the
answers back; it serves Node's calls into the model (`generate` goes to the
engine and is answered when its rows are done; `tokenize`/`detokenize` at once)
and passes stream chunks on. Cancellation goes both ways, as a `notifications/cancelled`
naming the request's id: the worker cancels a `handle` whose request is over (end_batch: Node's
AbortSignal for it aborts, and the engine drops the rows of every generate call that handle
opened), and Node cancels a `generate` whose signal aborted (the engine drops its rows). Each
generate call has an engine tag of its own. Tokenizing is kept off this thread (which relays every
stream) and off the engine's decode loop: a generate call with long text prompts is tokenized on
the bridge's tokenizer thread before the engine gets it, and so is a long tokenize or detokenize
call (short ones are answered at once: the hop would cost more). When the child dies, every call it held is answered
with a CONNECTION_CLOSED error, its generate calls are cancelled, and a new child
is started and handshaken before the next call goes out. When the bundle file
is replaced (`tsserve dev`, `register --replace`), the next `handle` that finds
the child idle starts a child on the new bundle first: the model stays loaded.

Nothing here knows torch: the model side comes in as the engine contract (engine/contract.py's
`ServingEngine`, which imports no torch).
"""
from __future__ import annotations

import collections
import itertools
import logging
import os
import select
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Hashable, Optional

from ..engine.contract import ServingEngine, failed_outcome, generate_requests
from . import protocol
from .errors import CONNECTION_CLOSED, INTERNAL_ERROR, INVALID_PARAMS, PeerClosed, PeerTimeout, RpcError, ShimConfigError
from .node_process import NodeProcess
from .rpc import Deferred, Peer, result_of

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_S = 60
SHUTDOWN_TIMEOUT_S = 1.0
# Waits between attempts to start a child after one failed to start: doubling, then steady.
RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)
# Work at least this big is tokenized on the tokenizer thread; below it, where it is asked for (under a millisecond).
OFF_THREAD_TEXT_BYTES = 16 * 1024
OFF_THREAD_IDS = 4096
Answer = Callable[[dict], None]


@dataclass
class Ticket:
    """A request sent with Bridge.request: which child's channel carried it, under which id (for a cancel)."""

    peer: Optional[Peer] = None
    request_id: Optional[int] = None


@dataclass
class _Generation:
    """A generate call the engine is serving for a child."""

    batch_id: Optional[int]  # the handle call it serves (None: from initialize)
    tag: Hashable  # its own engine tag
    deferred: Deferred
    lock: threading.Lock = field(default_factory=threading.Lock)
    submitted: bool = False  # the engine has it (else it is being tokenized)
    cancelled: bool = False


@dataclass(frozen=True)
class ChildSpec:
    node: str
    bundle: str
    cwd: str
    handshake: dict  # InitializeParams


def closed(message: dict) -> bool:
    """Whether an answer says the child died before it answered (or none is running)."""
    error = message.get("error")
    return isinstance(error, dict) and error.get("code") == CONNECTION_CLOSED


def unavailable(message: dict) -> bool:
    """Whether an answer says no child was running to take the request (one failed to start; the bridge retries)."""
    return closed(message) and (message["error"].get("data") or {}).get("unavailable") is True


def _describe(error: BaseException) -> str:
    return str(error) if isinstance(error, ShimConfigError) else f"{type(error).__name__}: {error}"


class Bridge:
    def __init__(
        self,
        spec: ChildSpec,
        model: ServingEngine,
        *,
        deadline_for: Callable[[Optional[int]], Any],
        on_chunk: Callable[[dict], None],
        on_generated: Callable[[Optional[int], list], None] = lambda batch_id, outcomes: None,
        refuse_generate: Callable[[Optional[int], list], Any] = lambda batch_id, requests: None,
        refuse_text: Callable[[str, dict], Optional[str]] = lambda method, params: None,
    ) -> None:
        self.spec = spec
        self.model = model
        self.deadline_for = deadline_for  # a batch id (or None) -> the Deadline of its generate calls
        self.on_chunk = on_chunk  # StreamChunkParams, on the bridge thread
        self.on_generated = on_generated  # (batch id, GenerateOutcomes) of every generate call, refused ones included, on the scheduler's or bridge's thread
        # (batch id, GenerateRequests) -> why the call is refused before any work: a message (400) or (status, message); None
        self.refuse_generate = refuse_generate
        self.refuse_text = refuse_text  # (tokenize | detokenize, its params) -> why it is refused (a 400), or None
        self._tokenizer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tsserve-tokenize")
        self.child: Optional[NodeProcess] = None
        self.peer: Optional[Peer] = None
        self.restarts = 0
        self._generations: dict[int, dict[Hashable, _Generation]] = {}  # child pid -> its generate calls in flight, by tag
        self._tags = itertools.count(1)
        self._calls_in_flight: collections.Counter = collections.Counter()  # child pid -> requests sent, not answered
        self._bundle_stamp: Optional[tuple] = None  # the bundle file the running child was started from
        self._posted: Deque[Callable[[], None]] = collections.deque()
        # While a child's handshake runs (its initialize may call generate: a warm-up), the work posted for its
        # channel is run by the handshake's own loop, apart from the rest (requests wait for the child to be up).
        self._post_lock = threading.Lock()
        self._handshake_peer: Optional[Peer] = None
        self._handshake_posted: Deque[Callable[[], None]] = collections.deque()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._stopping = False
        self.start_failure: Optional[str] = None  # why the last attempt to start a child failed, while none runs
        self._thread = threading.Thread(target=self._run, name="tsserve-bridge", daemon=True)

    # ------------------------------------------------------------ the API

    def start(self) -> "Bridge":
        """Start and handshake the first child here (a failure is the worker's load error), then serve it on the bridge thread."""
        self._start_child()
        self._thread.start()
        return self

    def post(self, work: Callable[[], None], peer: Optional[Peer] = None) -> None:
        """Run ``work`` on the bridge thread (``peer``: the channel it writes to, when it is one child's)."""
        with self._post_lock:
            if peer is not None and peer is self._handshake_peer:
                self._handshake_posted.append(work)
            else:
                self._posted.append(work)
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_write, b"!")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already

    def request(self, method: str, params: dict, on_answer: Answer) -> Ticket:
        """Send a request to the child; ``on_answer(message)`` gets its answer on the bridge thread
        (a CONNECTION_CLOSED error naming how the child ended, when it died first). The ticket names it to end_batch."""
        ticket = Ticket()

        def send() -> None:
            if self.start_failure is not None:
                on_answer(self._unavailable_answer())
                return
            if method == protocol.HANDLE:
                self._swap_if_rebuilt()
            child = self.child
            self._calls_in_flight[child.pid] += 1

            def answered(message: dict) -> None:
                self._calls_in_flight[child.pid] -= 1
                try:
                    on_answer(self._with_exit(child, message))
                except Exception:  # noqa: BLE001 - a caller's callback must not end the channel
                    log.exception("tsserve: delivering the answer to %s failed", method)

            ticket.peer = self.peer
            ticket.request_id = self.peer.request_async(method, params, answered)

        self.post(send)
        return ticket

    def end_batch(self, batch_id: int, ticket: Optional[Ticket] = None, reason: Optional[str] = None) -> None:
        """A handle call's request is over. With ``reason`` (it ran out of time, its client went away), Node is told to
        cancel the handle (its AbortSignal aborts) if it has not answered yet; either way the engine drops the rows of
        every generate call the handle opened that is still running."""

        def end() -> None:
            peer = ticket.peer if ticket is not None else None
            if reason is not None and peer is not None and peer is self.peer and peer.awaiting(ticket.request_id):
                peer.notify(protocol.CANCELLED, {"request_id": ticket.request_id, "reason": reason})
            for calls in self._generations.values():
                for generation in list(calls.values()):
                    if generation.batch_id == batch_id:
                        self._cancel(generation)

        self.post(end)

    def _unavailable_answer(self) -> dict:
        message = f"the handler process could not be started ({self.start_failure}); the shim keeps retrying"
        return {"jsonrpc": "2.0", "id": None, "error": {"code": CONNECTION_CLOSED, "message": message, "data": {"unavailable": True}}}

    @staticmethod
    def _with_exit(child: Optional[NodeProcess], message: dict) -> dict:
        if not closed(message) or child is None:
            return message
        child.reap()
        return {**message, "error": {**message["error"], "message": child.exit_description()}}

    def kill_child(self) -> None:
        """For a child that stopped answering: the bridge thread then fails what it held and starts another."""
        child = self.child
        if child is not None:
            log.error("tsserve: the handler process (pid %d) stopped answering; killing it", child.pid)
            child.kill()

    def stop(self) -> None:
        """Ask the child to shut down (it then exits 0 at stdin's end), then stop it."""
        if self._thread.is_alive() and self.start_failure is None:
            answered = threading.Event()
            self.request(protocol.SHUTDOWN, {}, lambda message: answered.set())
            answered.wait(SHUTDOWN_TIMEOUT_S)
        self._stopping = True
        self._wake()
        self._tokenizer.shutdown(wait=False, cancel_futures=True)
        child = self.child
        if child is not None:
            child.stop(grace=1.0)

    @property
    def child_pid(self) -> Optional[int]:
        return self.child.pid if self.child is not None else None

    # ------------------------------------------------------------ the child

    def _stamp(self) -> Optional[tuple]:
        try:
            stat = os.stat(self.spec.bundle)
        except OSError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def _swap_if_rebuilt(self) -> None:
        """A new bundle file: start a child on it and retire the old one, if that holds no call (a call in
        flight finishes on the code it started with; the swap then waits for a call that finds it idle)."""
        stamp = self._stamp()
        old_child, old_peer = self.child, self.peer
        if stamp is None or stamp == self._bundle_stamp or self._calls_in_flight[old_child.pid] > 0:
            return
        started = time.monotonic()
        try:
            self._start_child()
        except Exception as error:  # noqa: BLE001 - an OSError spawning node as much as a failed handshake
            log.error("tsserve: the new handler bundle failed to start; the running one keeps serving: %s", _describe(error))
            self._bundle_stamp = stamp  # not retried on every call: the next rebuild tries again
            return
        old_peer.close()  # serve_forever returns to _run, which serves the new peer
        for generation in self._generations.pop(old_child.pid, {}).values():
            self._cancel(generation)
        self._calls_in_flight.pop(old_child.pid, None)
        threading.Thread(target=old_child.stop, kwargs={"grace": 1.0}, name="tsserve-old-child", daemon=True).start()
        log.info(
            "tsserve: handler bundle replaced in %.0f ms (node pid %d -> %d); the model stayed loaded",
            (time.monotonic() - started) * 1000, old_child.pid, self.child.pid,
        )

    def _start_child(self) -> None:
        spec = self.spec
        stamp = self._stamp()
        child = NodeProcess(spec.node, spec.bundle, cwd=spec.cwd)
        peer = Peer(child.stdout_fd, child.stdin_fd, on_noise=lambda line: log.warning("tsserve channel: %s", line))
        peer.on_request(protocol.GENERATE, lambda params: self._serve_generate(peer, child.pid, params))
        peer.on_request(protocol.TOKENIZE, lambda params: self._serve_text(peer, protocol.TOKENIZE, params))
        peer.on_request(protocol.DETOKENIZE, lambda params: self._serve_text(peer, protocol.DETOKENIZE, params))
        peer.on_notification(protocol.STREAM_CHUNK, self.on_chunk)
        peer.on_notification(protocol.CANCELLED, lambda params: self._cancel_generate(child.pid, params))
        try:
            self._handshake(peer)
        except (PeerClosed, PeerTimeout, RpcError) as error:
            reason = error.message if isinstance(error, RpcError) else str(error)
            tail = child.stderr_tail()
            child.stop()
            raise ShimConfigError(
                f"the handler bundle failed to start: {reason} ({child.exit_description()})\n"
                f"--- node stderr ---\n{tail}\n--- end of node stderr ---"
            ) from None
        self.child, self.peer = child, peer
        self._bundle_stamp = stamp
        self._generations.setdefault(child.pid, {})
        log.info("tsserve: handler bundle started (node pid %d, %s)", child.pid, spec.node)

    def _handshake(self, peer: Peer) -> None:
        """Send initialize and serve the child until it answers: its generate/tokenize calls meanwhile (a warm-up)
        are answered, their engine callbacks posted to this loop, not to the bridge loop (which may be this thread)."""
        answers: list = []
        with self._post_lock:
            self._handshake_peer = peer
        try:
            peer.request_async(protocol.INITIALIZE, self.spec.handshake, answers.append)
            until = time.monotonic() + HANDSHAKE_TIMEOUT_S
            while not answers:
                left = until - time.monotonic()
                if left <= 0:
                    raise PeerTimeout(f"initialize got no answer within {HANDSHAKE_TIMEOUT_S} s")
                if not peer.serve_once(self._wake_read, self._run_handshake_posted, timeout=left):
                    if not answers:
                        raise PeerClosed("the handler process exited while initialize was pending")
        finally:
            with self._post_lock:
                self._handshake_peer = None
                self._posted.extend(self._handshake_posted)  # anything left for it goes on when the bridge serves it
                self._handshake_posted.clear()
            self._wake()  # the bridge loop's own posted work may have arrived meanwhile (its wake-up was read here)
        result_of(answers[0], protocol.INITIALIZE)

    def _run_handshake_posted(self) -> None:
        while True:
            with self._post_lock:
                if not self._handshake_posted:
                    return
                work = self._handshake_posted.popleft()
            work()

    def _run(self) -> None:
        while not self._stopping:
            peer = self.peer
            try:
                peer.serve_forever(self._wake_read, self._run_posted)
            except Exception:  # noqa: BLE001
                log.exception("tsserve: the channel to the handler process failed")
            peer.close()
            if self._stopping:
                break
            if self.peer is peer:  # else a rebuilt bundle's child took over (_swap_if_rebuilt)
                self._replace_child()

    def _replace_child(self) -> None:
        """The child is gone (its calls were answered CONNECTION_CLOSED): cancel its generate calls, start another,
        retrying with back-off; meanwhile each request is answered at once with why none runs."""
        try:
            self._retire_child()
        except Exception:  # noqa: BLE001 - whatever is left of the old child, a new one must start
            log.exception("tsserve: cleaning up after the handler process failed")
        attempt = 0
        while not self._stopping:
            try:
                self._start_child()
            except Exception as error:  # noqa: BLE001 - an OSError spawning node as much as a failed handshake
                self.start_failure = _describe(error)
                log.error("tsserve: could not restart the handler process: %s", self.start_failure)
                self._serve_posted_for(RESTART_BACKOFF_S[min(attempt, len(RESTART_BACKOFF_S) - 1)])
                attempt += 1
                continue
            self.start_failure = None
            self.restarts += 1
            return

    def _retire_child(self) -> None:
        child = self.child
        child.reap()
        log.error("tsserve: handler process %s; stderr tail:\n%s", child.exit_description(), child.stderr_tail())
        child.stop(grace=0.5)
        for generation in self._generations.pop(child.pid, {}).values():
            self._cancel(generation)

    def _serve_posted_for(self, seconds: float) -> None:
        """Run posted work as it comes (each request is answered as unavailable) for ``seconds``, or until stopping."""
        until = time.monotonic() + seconds
        while not self._stopping and (left := until - time.monotonic()) > 0:
            readable, _, _ = select.select([self._wake_read], [], [], left)
            if readable:
                try:
                    os.read(self._wake_read, 4096)
                except BlockingIOError:
                    pass
            self._run_posted()

    def _run_posted(self) -> None:
        while self._posted:
            self._posted.popleft()()

    # ------------------------------------------------------------ node -> shim

    def _serve_generate(self, peer: Peer, pid: int, params: dict) -> Deferred | dict:
        call_id = params["call_id"]
        batch_id = params.get("batch_id")
        refusal = self.refuse_generate(batch_id, params["requests"])
        if refusal is not None:
            status, message, *field = (400, refusal) if isinstance(refusal, str) else refusal
            outcome = {"ok": False, "status": status, "message": message, **({"field": field[0]} if field else {})}
            outcomes = [outcome] * len(params["requests"])
            self.on_generated(batch_id, outcomes)
            return {"outcomes": outcomes}
        deferred = Deferred()
        tag = ("generate", pid, next(self._tags))
        in_flight = self._generations.setdefault(pid, {})
        generation = in_flight[tag] = _Generation(batch_id, tag, deferred)

        def on_delta(request_index: int, sequence_index: int, text: str, logprobs: Optional[dict]) -> None:
            delta = {"call_id": call_id, "request_index": request_index, "sequence_index": sequence_index, "text": text, "logprobs": logprobs}
            self.post(lambda: peer.notify(protocol.GENERATION_DELTA, delta), peer)

        def done(outcomes: list) -> None:
            self.on_generated(batch_id, outcomes)

            def answer() -> None:
                in_flight.pop(tag, None)
                peer.reply(deferred, {"outcomes": outcomes})  # dropped when that child is gone (or ignored: Node cancelled it)

            self.post(answer, peer)

        try:
            requests = generate_requests(params["requests"])  # typed once, here, for the engine
        except (KeyError, TypeError, ValueError) as error:  # a malformed request fails its call, as the engine would
            done([failed_outcome(error)] * len(params["requests"]))
            return deferred
        wants_stream = any(request.stream for request in requests)
        deadline = self.deadline_for(batch_id)

        def start(requests: list) -> None:
            with generation.lock:
                if generation.cancelled:  # cancelled while it was being tokenized
                    done([{"ok": False, "status": 499, "message": "the generate call was cancelled before its generation started"}] * len(requests))
                    return
                generation.submitted = True
                self.model.submit(requests, done, on_delta if wants_stream else None, deadline, tag)

        pretokenize = getattr(self.model, "pretokenize", None)
        if pretokenize is None or _text_bytes(request.prompt for request in requests if request.prompt_token_ids is None) < OFF_THREAD_TEXT_BYTES:
            start(requests)
            return deferred

        def tokenize_then_start() -> None:
            try:
                start(pretokenize(requests))
            except Exception as error:  # noqa: BLE001 - this call's failure is its own
                log.exception("tsserve: tokenizing a generate call failed")
                done([{"ok": False, "status": 500, "message": f"tokenizing the prompts failed: {type(error).__name__}: {error}"}] * len(requests))

        self._tokenizer.submit(tokenize_then_start)
        return deferred

    def _cancel(self, generation: _Generation) -> None:
        """The engine drops the call's rows (one still being tokenized is never submitted)."""
        with generation.lock:
            generation.cancelled = True
            if generation.submitted:
                self.model.cancel(generation.tag)

    def _serve_text(self, peer: Peer, method: str, params: dict) -> Deferred | dict:
        """tokenize / detokenize: refused over the limits (a 400), answered here when small, else on the tokenizer thread."""
        refusal = self.refuse_text(method, params)
        if refusal is not None:
            raise RpcError(INVALID_PARAMS, refusal, {"status": 400})
        if method == protocol.TOKENIZE:
            texts, add, spans = params["texts"], params["add_special_tokens"], params.get("literal_spans")
            work = lambda: {"ids": self.model.tokenize(texts, add, spans) if spans else self.model.tokenize(texts, add)}  # noqa: E731
            small = _text_bytes(texts) < OFF_THREAD_TEXT_BYTES
        else:
            ids, skip = params["ids"], params["skip_special_tokens"]
            work = lambda: {"texts": self.model.detokenize(ids, skip)}  # noqa: E731
            small = sum(len(row) for row in ids) < OFF_THREAD_IDS
        if small:
            return work()
        deferred = Deferred()

        def run() -> None:
            try:
                result = work()
            except Exception as error:  # noqa: BLE001 - the peer's answer, not our crash
                failure = RpcError(INTERNAL_ERROR, f"{type(error).__name__}: {error}")
                self.post(lambda: peer.reply_error(deferred, failure), peer)
                return
            self.post(lambda: peer.reply(deferred, result), peer)

        self._tokenizer.submit(run)
        return deferred

    def _cancel_generate(self, pid: int, params: dict) -> None:
        """Node cancelled one of its generate calls (its AbortSignal aborted): the engine drops its rows."""
        request_id = params.get("request_id")
        for generation in list(self._generations.get(pid, {}).values()):
            if generation.deferred.request_id == request_id:
                self._cancel(generation)


def _text_bytes(texts) -> int:
    """UTF-8 bytes of some strings (an upper bound for non-ASCII: 4 a character, no encoding)."""
    return sum(len(text) if text.isascii() else 4 * len(text) for text in texts if isinstance(text, str))

"""Serving the engine to Node: the calls a child makes into the model while a `handle` is open.

`generate` goes to the engine and is answered when its rows are done (its deltas streamed meanwhile);
`tokenize`/`detokenize` are answered at once. Each generate call has an engine tag of its own, so that
it can be cancelled alone: Node cancels one whose AbortSignal aborted (`notifications/cancelled` naming
its id), and the bridge cancels every call a handle opened when that handle's request is over, and every
call of a child that is gone. Tokenizing is kept off the bridge thread (which relays every stream) and off
the engine's decode loop: a generate call with long text prompts is tokenized on the tokenizer thread
before the engine gets it, and so is a long tokenize or detokenize call (short ones are answered at once:
the hop would cost more).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..engine.contract import DEFAULT_STAGE, GenerateRequest, Malformed, ServingEngine, generate_requests, generate_tag, tag_trace, tagged
from . import protocol
from .errors import INTERNAL_ERROR, INVALID_PARAMS, RpcError
from .rpc import Deferred, Peer

log = logging.getLogger(__name__)

# Work at least this big is tokenized on the tokenizer thread; below it, where it is asked for (under a millisecond).
OFF_THREAD_TEXT_BYTES = 16 * 1024
OFF_THREAD_IDS = 4096
Post = Callable[[Callable[[], None], Peer | None], None]
Done = Callable[[list], None]


@dataclass
class Generation:
    """A generate call the engine is serving for a child."""

    batch_id: int | None  # the handle call it serves (None: from initialize)
    pid: int  # the child that made it
    tag: Hashable  # its own engine tag
    stages: list[str] = field(default_factory=list)  # each request's handler stage (its metrics' `stage` label)
    deferred: Deferred = field(default_factory=Deferred)
    lock: threading.Lock = field(default_factory=threading.Lock)
    submitted: bool = False  # the engine has it (else it is being tokenized)
    cancelled: bool = False


@dataclass(frozen=True)
class EngineCall:
    """What the engine is handed for one generate call, but its tag."""

    requests: list[GenerateRequest | Malformed]
    done: Done
    on_delta: Callable[..., None] | None
    deadline: Any


class ModelCalls:
    def __init__(
        self,
        engine: ServingEngine,
        post: Post,
        *,
        deadline_for: Callable[[int | None], Any],
        on_generated: Callable[[int | None, list, list[str]], None],
        refuse_generate: Callable[[int | None, list], Any],
        refuse_text: Callable[[str, dict], str | None],
        trace_for: Callable[[int | None], str | None] = lambda batch_id: None,
    ) -> None:
        self.engine = engine
        self.trace_for = trace_for  # a batch id -> its requests' trace id (the engine tag carries it)
        self._post = post  # runs work on the bridge thread (the one that writes the child's channel)
        self.deadline_for = deadline_for  # a batch id (or None) -> the Deadline of its generate calls
        # (batch id, GenerateOutcomes, their requests' stages) of every generate call, refused ones included
        self.on_generated = on_generated
        # (batch id, GenerateRequests) -> why the call is refused before any work: a message (400) or (status, message[, field]); None
        self.refuse_generate = refuse_generate
        self.refuse_text = refuse_text  # (tokenize | detokenize, its params) -> why it is refused (a 400), or None
        self._tokenizer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tsserve-tokenize")
        self._generations: dict[int, dict[Hashable, Generation]] = {}  # child pid -> its generate calls in flight, by tag
        self._tags = itertools.count(1)

    def serve_on(self, peer: Peer, pid: int) -> None:
        """Answer a child's calls into the model on its channel."""
        peer.on_request(protocol.GENERATE, lambda params: self._generate(peer, pid, params))
        peer.on_request(protocol.TOKENIZE, lambda params: self._tokenize(peer, params))
        peer.on_request(protocol.DETOKENIZE, lambda params: self._detokenize(peer, params))
        peer.on_notification(protocol.CANCELLED, lambda params: self._cancelled_by_node(pid, params))

    def cancel_batch(self, batch_id: int) -> None:
        """A handle call's request is over: the engine drops the rows of every generate call it opened."""
        for calls in self._generations.values():
            for generation in list(calls.values()):
                if generation.batch_id == batch_id:
                    self._cancel(generation)

    def forget_child(self, pid: int) -> None:
        """A child is gone: the engine drops the rows of its generate calls."""
        for generation in self._generations.pop(pid, {}).values():
            self._cancel(generation)

    def shutdown(self) -> None:
        self._tokenizer.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ generate

    def _generate(self, peer: Peer, pid: int, params: dict) -> Deferred | dict:
        batch_id = params.get("batch_id")
        refused = self._refusal_outcomes(batch_id, params["requests"])
        if refused is not None:
            return {"outcomes": refused}
        tag = generate_tag(pid, next(self._tags), self.trace_for(batch_id))
        generation = self._generations.setdefault(pid, {})[tag] = Generation(batch_id, pid, tag, request_stages(params["requests"]))
        # Typed once, here, for the engine; a malformed request stays a Malformed that the engine answers alone (a 400).
        requests = generate_requests(params["requests"])
        streams = any(isinstance(request, GenerateRequest) and request.stream for request in requests)
        on_delta = self._streamer(peer, params["call_id"]) if streams else None
        call = EngineCall(requests, self._finisher(peer, generation), on_delta, self.deadline_for(batch_id))
        if _text_bytes(_text_prompts(requests)) < OFF_THREAD_TEXT_BYTES:
            self._start(generation, call, call.requests)
        else:
            self._tokenizer.submit(self._tokenize_then_start, generation, call)
        return generation.deferred

    def _refusal_outcomes(self, batch_id: int | None, requests: list) -> list | None:
        """The outcomes of a generate call refused before any work, or None."""
        refusal = _stage_refusal(requests) or self.refuse_generate(batch_id, requests)
        if refusal is None:
            return None
        status, message, *field = (400, refusal) if isinstance(refusal, str) else refusal
        outcome = {"ok": False, "status": status, "message": message, **({"field": field[0]} if field else {})}
        outcomes = [outcome] * len(requests)
        self.on_generated(batch_id, outcomes, request_stages(requests))
        return outcomes

    def _streamer(self, peer: Peer, call_id: Any) -> Callable[..., None]:
        def on_delta(request_index: int, sequence_index: int, text: str, logprobs: dict | None) -> None:
            delta = {
                "call_id": call_id,
                "request_index": request_index,
                "sequence_index": sequence_index,
                "text": text,
                "logprobs": logprobs,
            }
            self._post(lambda: peer.notify(protocol.GENERATION_DELTA, delta), peer)

        return on_delta

    def _finisher(self, peer: Peer, generation: Generation) -> Done:
        def done(outcomes: list) -> None:
            self.on_generated(generation.batch_id, outcomes, generation.stages)

            def answer() -> None:
                self._generations.get(generation.pid, {}).pop(generation.tag, None)
                peer.reply(generation.deferred, {"outcomes": outcomes})  # dropped when that child is gone (or ignored: Node cancelled it)

            self._post(answer, peer)

        return done

    def _tokenize_then_start(self, generation: Generation, call: EngineCall) -> None:
        try:
            self._start(generation, call, self.engine.pretokenize(call.requests))
        except Exception as error:
            log.exception("tsserve: %s", tagged(tag_trace(generation.tag), "tokenizing a generate call failed"))
            call.done(_failed(len(call.requests), 500, f"tokenizing the prompts failed: {type(error).__name__}: {error}"))

    def _start(self, generation: Generation, call: EngineCall, requests: list) -> None:
        with generation.lock:
            if generation.cancelled:  # cancelled while it was being tokenized
                call.done(_failed(len(requests), 499, "the generate call was cancelled before its generation started"))
                return
            generation.submitted = True
            self.engine.submit(requests, call.done, call.on_delta, call.deadline, generation.tag)

    # ------------------------------------------------------------ cancel

    def _cancelled_by_node(self, pid: int, params: dict) -> None:
        """Node cancelled one of its generate calls (its AbortSignal aborted): the engine drops its rows."""
        request_id = params.get("request_id")
        for generation in list(self._generations.get(pid, {}).values()):
            if generation.deferred.request_id == request_id:
                self._cancel(generation)

    def _cancel(self, generation: Generation) -> None:
        """The engine drops the call's rows (one still being tokenized is never submitted)."""
        with generation.lock:
            generation.cancelled = True
            if generation.submitted:
                self.engine.cancel(generation.tag)

    # ------------------------------------------------------------ tokenize, detokenize

    def _tokenize(self, peer: Peer, params: dict) -> Deferred | dict:
        self._check_text_call(protocol.TOKENIZE, params)
        texts, add, spans = params["texts"], params["add_special_tokens"], params.get("literal_spans")
        work = lambda: {"ids": self.engine.tokenize(texts, add, spans) if spans else self.engine.tokenize(texts, add)}  # noqa: E731
        return self._answer_text_call(peer, work, small=_text_bytes(texts) < OFF_THREAD_TEXT_BYTES)

    def _detokenize(self, peer: Peer, params: dict) -> Deferred | dict:
        self._check_text_call(protocol.DETOKENIZE, params)
        ids, skip = params["ids"], params["skip_special_tokens"]
        work = lambda: {"texts": self.engine.detokenize(ids, skip)}  # noqa: E731
        return self._answer_text_call(peer, work, small=sum(len(row) for row in ids) < OFF_THREAD_IDS)

    def _check_text_call(self, method: str, params: dict) -> None:
        """A call over the limits is refused (a 400) before any work."""
        refusal = self.refuse_text(method, params)
        if refusal is not None:
            raise RpcError(INVALID_PARAMS, refusal, {"status": 400})

    def _answer_text_call(self, peer: Peer, work: Callable[[], dict], *, small: bool) -> Deferred | dict:
        """A small call is answered here; a big one on the tokenizer thread."""
        if small:
            return work()
        deferred = Deferred()

        def run() -> None:
            try:
                result = work()
            except Exception as error:
                failure = RpcError(INTERNAL_ERROR, f"{type(error).__name__}: {error}")
                self._post(lambda: peer.reply_error(deferred, failure), peer)
                return
            self._post(lambda: peer.reply(deferred, result), peer)

        self._tokenizer.submit(run)
        return deferred


def _failed(count: int, status: int, message: str) -> list:
    return [{"ok": False, "status": status, "message": message}] * count


def _text_prompts(requests: list[GenerateRequest | Malformed]) -> Iterable[Any]:
    """The prompts the engine would tokenize (a request that sends its ids is not tokenized, nor a malformed one)."""
    return (request.prompt for request in requests if isinstance(request, GenerateRequest) and request.prompt_token_ids is None)


def request_stages(requests: list) -> list[str]:
    """Each GenerateRequest's handler stage, the `stage` label of its counts: its `stage`, else DEFAULT_STAGE
    (also for one that could not be a label, whose call is refused)."""
    stages = [request.get("stage") if isinstance(request, dict) else None for request in requests]
    return [stage if isinstance(stage, str) and protocol.STAGE_PATTERN.fullmatch(stage) else DEFAULT_STAGE for stage in stages]


def _stage_refusal(requests: list) -> tuple[int, str, str] | None:
    """A stage that could not be a metrics label (the handler's mistake): the call is refused, naming it."""
    for request in requests:
        stage = request.get("stage") if isinstance(request, dict) else None
        if stage is not None and not (isinstance(stage, str) and protocol.STAGE_PATTERN.fullmatch(stage)):
            return 400, f"stage: {str(stage)[:80]!r} is not 1 to 64 letters, digits, '_', '.' or '-'", "stage"
    return None


def _text_bytes(texts: Iterable[Any]) -> int:
    """UTF-8 bytes of some strings (an upper bound for non-ASCII: 4 a character, no encoding)."""
    return sum(len(text) if text.isascii() else 4 * len(text) for text in texts if isinstance(text, str))

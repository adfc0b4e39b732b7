"""The engine contract: what the worker and the bridge call on an engine, whichever serves the model, and
the typed GenerateRequest it takes.

Both engines keep it: ``transformers.engine.Engine`` (tsserve's own, on a transformers model) and
``vllm.engine.VllmEngine`` (vLLM's async engine); ``registry.load_engine`` returns one of them. The
bridge takes the engine as this Protocol, so nothing here may import torch (nor anything that does).

A GenerateRequest is parsed once, where the bridge hands Node's generate params to the engine
(``generate_requests``); its fields are src/protocol/messages.ts's, required where that makes them
required. Outcomes stay the protocol's GenerateOutcome dicts (``Outcome``): the bridge sends them to Node
and the worker counts them as they are, so a dataclass would only be converted back at once.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

# The handler stage of a generate request that names none (a handler's one model call): its metrics' `stage` label.
DEFAULT_STAGE = "main"

Outcome = dict  # a GenerateOutcome (src/protocol/messages.ts): {"ok": True, ...} or {"ok": False, "status", "message"}


@dataclass(frozen=True)
class GenerateRequest:
    """One request of a generate call (messages.ts's GenerateRequest; ``structured``: common/structured.py)."""

    prompt: str
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    repetition_penalty: float
    seed: int | None
    stop: tuple[str, ...]
    logprobs: int | None  # alternatives reported per token; None: no logprobs reported, none need computing
    num_sequences: int
    echo: bool
    stream: bool
    prompt_token_ids: tuple[int, ...] | None = None  # the prompt as ids, when the client sent ids (never re-tokenized)
    literal_spans: tuple[tuple[int, int], ...] | None = None  # content spans of ``prompt``, tokenized as plain text
    structured: Mapping[str, Any] | None = None
    stage: str | None = None  # the handler stage it serves (AgentInstruct's explanation, answer), for the metrics

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> GenerateRequest:
        """From one entry of GenerateParams.requests (MalformedRequest, naming the field, when it is malformed)."""
        if not isinstance(params, Mapping):
            raise MalformedRequest("request", f"a generate request is an object, not {type(params).__name__}")
        return cls(
            prompt=_field(params, "prompt"),
            max_tokens=_field(params, "max_tokens", int),
            temperature=_field(params, "temperature", float),
            top_p=_field(params, "top_p", float),
            top_k=_field(params, "top_k", lambda v: int(v or 0)),
            repetition_penalty=_field(params, "repetition_penalty", lambda v: float(v or 1.0)),
            seed=_field(params, "seed"),
            stop=_field(params, "stop", lambda v: tuple(v or ())),
            logprobs=_field(params, "logprobs", lambda v: None if v is None else int(v)),
            num_sequences=_field(params, "num_sequences", int),
            echo=_field(params, "echo", bool),
            stream=_field(params, "stream", bool),
            prompt_token_ids=_field(params, "prompt_token_ids", _token_ids, optional=True),
            literal_spans=_field(params, "literal_spans", _spans, optional=True),
            structured=params.get("structured"),
            stage=_field(params, "stage", lambda v: None if v is None else str(v), optional=True),
        )

    @classmethod
    def of(cls, request: GenerateRequest | Mapping[str, Any]) -> GenerateRequest:
        """``request`` itself when it is typed already, else parsed (a test's or a script's dict)."""
        return request if isinstance(request, GenerateRequest) else cls.from_params(request)


class MalformedRequest(ValueError):
    """A generate request with a field missing or of the wrong type; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def _field(params: Mapping[str, Any], name: str, convert: Callable[[Any], Any] = lambda v: v, *, optional: bool = False) -> Any:
    if not optional and name not in params:
        raise MalformedRequest(name, "missing")
    value = params.get(name)
    try:
        return convert(value)
    except (TypeError, ValueError) as error:
        raise MalformedRequest(name, f"{value!r} is not valid here ({error})") from error


def _token_ids(value: Any) -> tuple[int, ...] | None:
    return None if value is None else tuple(int(i) for i in value)


def _spans(value: Any) -> tuple[tuple[int, int], ...] | None:
    return None if value is None else tuple((int(start), int(end)) for start, end in value)


@dataclass(frozen=True)
class Malformed:
    """A request of a generate call that could not be parsed: admission answers it alone, with its 400."""

    error: MalformedRequest

    def outcome(self) -> Outcome:
        return error_outcome(400, f"malformed generate request: {self.error}", self.error.field)


def parse_request(request: GenerateRequest | Mapping[str, Any]) -> GenerateRequest | Malformed:
    try:
        return GenerateRequest.of(request)
    except MalformedRequest as error:
        return Malformed(error)


def generate_requests(requests: Sequence[GenerateRequest | Malformed | Mapping[str, Any]]) -> list[GenerateRequest | Malformed]:
    """A call's requests parsed, each alone: a malformed one is a Malformed that its own 400 answers."""
    return [request if isinstance(request, Malformed) else parse_request(request) for request in requests]


def error_outcome(status: int, message: str, field: str | None = None) -> Outcome:
    """A failed GenerateOutcome; ``field``: the request field a refusal is about."""
    outcome = {"ok": False, "status": status, "message": message}
    if field is not None:
        outcome["field"] = field
    return outcome


def failed_outcome(error: BaseException) -> Outcome:
    """The 500 of a call whose generation raised (common.output.generation_failure tells out of memory apart)."""
    return error_outcome(500, f"generation failed: {type(error).__name__}: {error}")


Requests = Sequence["GenerateRequest | Mapping[str, Any]"]


class ServingEngine(Protocol):
    """What the worker and the bridge need of an engine. A call's ``done(outcomes)`` is called once, on the
    engine's own thread; ``cancel(tag)`` ends the calls submitted with ``tag``, even one submitted after it."""

    def start(self) -> ServingEngine: ...
    def submit(
        self,
        requests: Requests,
        done: Callable[[list[Outcome]], None],
        on_delta: Any = None,
        deadlines: Any = None,
        tag: Hashable | None = None,
    ) -> None: ...
    def cancel(self, tag: Hashable) -> None: ...
    def generate(self, requests: Requests, on_delta: Any = None, deadlines: Any = None) -> list[Outcome]: ...
    def tokenize(
        self, texts: Sequence[str], add_special_tokens: bool = True, literal_spans: Sequence[Sequence[Sequence[int]]] | None = None
    ) -> list[list[int]]: ...
    def detokenize(self, ids: Sequence[Sequence[int]], skip_special_tokens: bool = False) -> list[str]: ...
    # The requests with their text prompts tokenized (common.prompts.PromptTokenizer.pretokenize); the bridge
    # tokenizes a long generate call with it off its own thread, before the engine gets it.
    def pretokenize(self, requests: Requests) -> list[GenerateRequest]: ...
    def info(self) -> dict: ...
    def shutdown(self) -> None: ...

    # What it measures while serving (common.stats.EngineStats), which the worker publishes as metrics.
    stats: Any


# ------------------------------------------------------------------ a call's tag and its trace id
# The trace id of the HTTP request a model call serves (worker/trace.py picks it) goes as far down as the engine:
# the bridge puts it last in a generate call's engine tag, and log lines about the request carry `[request ID]`.


def tagged(trace: str | None, text: str) -> str:
    """A log line about the request ``trace``: `[request ID] text` (the text alone without one)."""
    return f"[request {trace}] {text}" if trace else text


def generate_tag(pid: int, number: int, trace: str | None) -> tuple:
    """The engine tag of a child's generate call: unique per call, its trace id last."""
    return ("generate", pid, number, trace)


def tag_trace(tag: Hashable | None) -> str | None:
    """The trace id in an engine tag made by generate_tag, else None."""
    return tag[3] if isinstance(tag, tuple) and len(tag) == 4 and tag[0] == "generate" else None


def engine_request_id(tag: Hashable | None, number: int) -> str:
    """An engine's own id for one request of a call (vLLM's request id, in vLLM's log lines): the trace id in it."""
    trace = tag_trace(tag)
    return f"tsserve-{trace}-{number}" if trace else f"tsserve-{number}"

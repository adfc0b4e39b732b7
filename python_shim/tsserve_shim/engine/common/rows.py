"""A row is one sequence being generated: one (request, sequence) pair with its own settings and output so far.

``build_rows`` is the one place that turns GenerateRequests into rows.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from .deadline import Deadline
from .detokenize import IncrementalDecoder
from .sampling import row_key
from .stopping import StopMatcher

OnDelta = Callable[[int, int, str, "dict | None"], None]

# Why a row ended when it produced no answer of its own (its request is answered with an error).
TIMED_OUT = "timeout"
CANCELLED = "cancelled"


@dataclass
class Row:
    request: int
    sequence: int
    prompt: str
    prompt_ids: list[int]
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    penalty: float
    k: int  # top_logprobs wanted
    stream: bool
    echo: bool
    stops: StopMatcher
    key: int  # the sampling key (sampling.row_key)
    deadline: Deadline | None
    decoder: IncrementalDecoder
    on_delta: OnDelta | None = None  # where a streaming row's new text goes
    scores_prompt: bool = False  # the row that carries its echo request's prompt logprobs
    prompt_logprobs: dict | None = None
    text: str = ""
    tokens: list[str] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    tops: list[dict | None] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    chosen_ids: list[int] = field(default_factory=list)  # every token chosen, before stop sequences cut any
    cached_tokens: int = 0  # prompt positions whose KV came from the prefix cache
    streamed_chars: int = 0
    streamed_tokens: int = 0
    structured: dict | None = None  # the request's structured output (structured.py), None for free text
    grammar: Any = None  # the row's grammar matcher, made at its first decode step

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    @property
    def answered(self) -> bool:
        """Whether the row ended with text of its own (not by its deadline or a cancel)."""
        return self.finish_reason not in (TIMED_OUT, CANCELLED)


def build_rows(
    tokenizer,
    requests: Sequence[Mapping[str, Any]],
    prompts: Mapping[int, list[int]],
    deadlines: Sequence[Deadline | None],
    on_delta: OnDelta | None = None,
) -> list[Row]:
    """One row per sequence of every admitted request (``prompts``: request index -> prompt ids)."""
    rows: list[Row] = []
    for index, ids in prompts.items():
        request = requests[index]
        temperature = float(request.get("temperature", 0.0))
        stops = StopMatcher(request.get("stop") or [])
        for sequence in range(int(request.get("num_sequences", 1))):
            rows.append(
                Row(
                    request=index,
                    sequence=sequence,
                    prompt=request["prompt"],
                    prompt_ids=ids,
                    max_tokens=int(request["max_tokens"]),
                    temperature=temperature,
                    top_p=min(1.0, max(0.0, float(request.get("top_p", 1.0)))),
                    top_k=max(0, int(request.get("top_k", 0) or 0)),
                    penalty=float(request.get("repetition_penalty", 1.0) or 1.0),
                    k=int(request.get("logprobs", 0) or 0),
                    stream=bool(request.get("stream", False)),
                    echo=bool(request.get("echo", False)),
                    stops=stops,
                    key=row_key(request.get("seed"), sequence),
                    deadline=deadlines[index],
                    decoder=IncrementalDecoder(tokenizer, ids),
                    on_delta=on_delta,
                    scores_prompt=bool(request.get("echo", False)) and sequence == 0,
                    structured=request.get("structured"),
                )
            )
    return rows


def expire(rows: Sequence[Row]) -> None:
    """End the rows whose deadline has passed (they leave the batch; their request is answered 504)."""
    now = None
    for row in rows:
        if row.deadline is not None and not row.done:
            now = time.monotonic() if now is None else now
            if row.deadline.passed(now):
                row.finish_reason = TIMED_OUT

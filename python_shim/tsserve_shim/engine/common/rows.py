"""A row is one sequence being generated: one (request, sequence) pair with its request's settings and its
output so far.

``build_rows`` is the one place that turns GenerateRequests into rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..contract import GenerateRequest
from .deadline import Deadline
from .detokenize import IncrementalDecoder
from .stopping import StopMatcher

if TYPE_CHECKING:  # an annotation only: rows stay free of torch
    from .scores import Scores

OnDelta = Callable[[int, int, str, "dict | None"], None]

# Why a row ended when it produced no answer of its own (its request is answered with an error).
TIMED_OUT = "timeout"
CANCELLED = "cancelled"


@dataclass(eq=False)
class Row:
    """What both engines keep of a row: its request, the text and tokens so far, how it ended and what it
    streamed. An engine's own per-row state lives in its own subclass (transformers/batch.py's DecodeRow)."""

    request: int  # the request's index in its call
    sequence: int
    params: GenerateRequest
    prompt_ids: list[int]
    stops: StopMatcher
    deadline: Deadline | None
    decoder: IncrementalDecoder
    on_delta: OnDelta | None = None  # where a streaming row's new text goes
    scores_prompt: bool = False  # the row that carries its echo request's prompt logprobs
    prompt_scores: Scores | None = None  # those logprobs as numbers, set by the engine that scored the prompt
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

    @property
    def prompt(self) -> str:
        return self.params.prompt

    @property
    def max_tokens(self) -> int:
        return self.params.max_tokens

    @property
    def k(self) -> int:
        """top_logprobs wanted."""
        return self.params.logprobs or 0

    @property
    def stream(self) -> bool:
        return self.params.stream

    @property
    def echo(self) -> bool:
        return self.params.echo

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    @property
    def answered(self) -> bool:
        """Whether the row ended with text of its own (not by its deadline or a cancel)."""
        return self.finish_reason not in (TIMED_OUT, CANCELLED)


def build_rows(
    tokenizer,
    requests: Sequence[GenerateRequest],
    prompts: Mapping[int, list[int]],
    deadlines: Sequence[Deadline | None],
    on_delta: OnDelta | None = None,
    row_type: type[Row] = Row,
) -> list[Row]:
    """One row (a ``row_type``) per sequence of every admitted request (``prompts``: request index -> prompt ids)."""
    rows: list[Row] = []
    for index, ids in prompts.items():
        request = requests[index]
        stops = StopMatcher(request.stop)
        for sequence in range(request.num_sequences):
            rows.append(
                row_type(
                    request=index,
                    sequence=sequence,
                    params=request,
                    prompt_ids=ids,
                    stops=stops,
                    deadline=deadlines[index],
                    decoder=IncrementalDecoder(tokenizer, ids),
                    on_delta=on_delta,
                    scores_prompt=request.echo and sequence == 0,
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

"""The output processor: what each sampled token does to its row (EOS, text, stop sequences, budget), the
text a streaming row may send, echo's prompt logprobs, and the GenerateOutcome of finished rows. Both
engines hand it what they sampled (SampledToken; the transformers engine a whole StepOutput a step).

Shapes (src/protocol/messages.ts has the zod definitions):
- a Sequence's ``logprobs`` covers the generated tokens only; ``tokens[i]`` is the
  text token i added (concatenated they give ``text``; a token that ends inside
  a UTF-8 character adds "" and the next carries the character) and
  ``text_offset[i]`` is its start in ``text``. ``top_logprobs[i]`` maps the text
  of the ``logprobs`` most likely tokens to their logprobs (None when 0). EOS is
  not reported, except in an ``echo`` request (scoring), as a last token with text "".
  After a stop sequence the text is cut before it and the tokens that begin before
  the cut are kept.
- the outcome's ``prompt`` is filled only for ``echo`` requests (else all lists
  are empty): every prompt token including an added BOS, the first logprob
  None, offsets into the prompt string (``prompt_offsets``: the BOS and a
  tokenizer's leading space, absent from the prompt, start at 0).
- ``compute_time`` is the wall time from the call's admission to its answer.

Echo's prompt logprobs are made from the Scores (scores.py) an engine left on the row that scores its prompt.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ..contract import Outcome, error_outcome, failed_outcome
from .detokenize import IncrementalDecoder, token_strings
from .prompts import PromptTokenizer
from .rows import CANCELLED, TIMED_OUT, Row
from .scores import Scores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampledToken:
    """One token a row took, as its engine sampled it: its logprob and the best alternatives (ids, logprobs)."""

    token: int
    logprob: float
    top_ids: Sequence[int] = ()
    top_values: Sequence[float] = ()
    ends: bool = False  # the engine ended the row on it (a stop token id of vLLM's): taken as an EOS


@dataclass
class StepOutput:
    """What one decode step gave: ``rows[i]`` took ``sampled[i]``."""

    rows: list[Row]
    sampled: list[SampledToken]


class OutputProcessor:
    """Takes sampled tokens into rows and answers finished calls. ``text``: the engine's tokenizer side (its
    tokenizer and EOS ids, read at each use)."""

    def __init__(self, text: PromptTokenizer) -> None:
        self.text = text

    @property
    def eos_ids(self) -> set[int]:
        return self.text.eos_ids

    def process(self, step: StepOutput) -> None:
        for row, sampled in zip(step.rows, step.sampled):
            self.take(row, sampled)

    def take(self, row: Row, sampled: SampledToken) -> None:
        """One token into its row, and what the row may stream now."""
        tops = top_alternatives(row.decoder, sampled.top_ids[: row.k], sampled.top_values[: row.k]) if row.k > 0 else None
        row.chosen_ids.append(sampled.token)
        eos_ids = self.eos_ids | {sampled.token} if sampled.ends else self.eos_ids
        advance(row, sampled.token, sampled.logprob, tops, eos_ids)
        stream(row)

    @staticmethod
    def finish(row: Row, reason: str) -> None:
        """The engine ended the row (a vLLM finish reason): what it held back goes out."""
        row.finish_reason = reason
        flush(row)
        stream(row)

    def outcomes(self, prompts: Mapping[int, list[int]], rows: Sequence[Row], elapsed: float) -> dict[int, Outcome]:
        """The GenerateOutcome of every admitted request once its rows are done (504 when one ran out of time)."""
        return {index: self._outcome(ids, [row for row in rows if row.request == index], elapsed) for index, ids in prompts.items()}

    def _outcome(self, ids: list[int], rows: list[Row], elapsed: float) -> Outcome:
        late = [row for row in rows if row.finish_reason == TIMED_OUT]
        if late:
            produced = max(len(r.token_ids) for r in rows)
            return error_outcome(504, late[0].deadline.message(produced, late[0].max_tokens))
        if any(row.finish_reason == CANCELLED for row in rows):
            return error_outcome(499, "the request was cancelled before its generation finished")
        scored = next((r for r in rows if r.prompt_scores is not None), None)
        return {
            "ok": True,
            "prompt": self._prompt_logprobs(scored) if scored is not None else empty_token_logprobs(),
            "sequences": [sequence(row) for row in rows],
            "prompt_tokens": len(ids),
            "cached_tokens": rows[0].cached_tokens,
            "compute_time": elapsed,
        }

    def _prompt_logprobs(self, row: Row) -> dict:
        return prompt_logprobs(self.text.tokenizer, row.prompt_scores, row.prompt_ids, row.k, row.prompt)


def empty_token_logprobs() -> dict:
    return {"tokens": [], "token_ids": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}


def is_oom(error: BaseException) -> bool:
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(error, oom):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def generation_failure(error: BaseException, rows: int) -> Outcome:
    """The outcome of every request whose pass raised: 507 when out of memory, else 500."""
    if is_oom(error):
        log.error("tsserve: out of memory while generating %d rows: %s", rows, error)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return error_outcome(507, f"out of memory while generating: {error}")
    log.error("tsserve: generation failed", exc_info=error)
    return failed_outcome(error)


# ------------------------------------------------------------------ one token


def advance(row: Row, token: int, logprob: float, tops: dict | None, eos_ids: set[int]) -> None:
    """Take one chosen token into a row: EOS, text, stop sequences, budget."""
    if token in eos_ids:
        row.finish_reason = "stop"
        flush(row)
        if row.echo:
            keep_eos(row, token, logprob, tops)
        return
    before = len(row.text)
    piece = row.decoder.step(token)
    row.offsets.append(before)
    row.tokens.append(piece)
    row.token_ids.append(token)
    row.logprobs.append(logprob)
    row.tops.append(tops)
    row.text += piece
    if row.stops and piece:
        at = row.stops.find(row.text, before)
        if at is not None:
            cut(row, at)
            row.finish_reason = "stop"
            return
    if len(row.token_ids) >= row.max_tokens:
        row.finish_reason = "length"
        flush(row)


def keep_eos(row: Row, token: int, logprob: float, tops: dict | None) -> None:
    """An echo row (scoring) reports the EOS it ended on, with text "": a client that scores the prompt
    and one new token (lm-eval: ``token_logprobs[ctxlen:-1]``) finds that token there, as vLLM reports it."""
    row.offsets.append(len(row.text))
    row.tokens.append("")
    row.token_ids.append(token)
    row.logprobs.append(logprob)
    row.tops.append(tops)


def flush(row: Row) -> None:
    tail = row.decoder.flush()
    if tail and row.tokens:
        row.tokens[-1] += tail
        row.text += tail


def cut(row: Row, at: int) -> None:
    """Cut the text before a stop; keep the tokens that begin before the cut."""
    row.text = row.text[:at]
    keep = sum(1 for offset in row.offsets if offset < at)
    for name in ("tokens", "token_ids", "logprobs", "tops", "offsets"):
        del getattr(row, name)[keep:]


def top_alternatives(decoder: IncrementalDecoder, ids: Sequence[int], values: Sequence[float]) -> dict[str, float]:
    """The text of each alternative token and its logprob (the first of equal texts wins)."""
    entry: dict[str, float] = {}
    for text, value in zip(decoder.alternatives(ids), values):
        entry.setdefault(text, value)
    return entry


# ------------------------------------------------------------------ streaming


def stream(row: Row) -> None:
    """Send what can no longer turn into a stop sequence (everything, once the row is done)."""
    if not row.stream or row.on_delta is None or not row.answered:
        return
    end = len(row.text) if row.done else len(row.text) - row.stops.holdback(row.text)
    if end <= row.streamed_chars and not row.done:
        return
    first = row.streamed_tokens
    last = first
    while last < len(row.tokens) and (row.done or row.offsets[last] + len(row.tokens[last]) <= end):
        last += 1
    text = row.text[row.streamed_chars : end] if end > row.streamed_chars else ""
    if not text and last == first:
        return
    row.streamed_chars = max(row.streamed_chars, end)
    row.streamed_tokens = last
    row.on_delta(row.request, row.sequence, text, token_logprobs(row, first, last))


# ------------------------------------------------------------------ answers


def token_logprobs(row: Row, first: int = 0, last: int | None = None) -> dict:
    window = slice(first, last)
    return {
        "tokens": row.tokens[window],
        "token_ids": row.token_ids[window],
        "token_logprobs": row.logprobs[window],
        "top_logprobs": row.tops[window],
        "text_offset": row.offsets[window],
    }


def sequence(row: Row) -> dict:
    return {
        "text": row.text,
        "finish_reason": row.finish_reason or "length",
        "logprobs": token_logprobs(row),
        "cumulative_logprob": float(sum(row.logprobs)),
        "generated_tokens": len(row.chosen_ids),
    }


def prompt_offsets(prompt: str, strings: Sequence[str]) -> list[int]:
    """Where each prompt token's text starts in ``prompt`` (code points), as echo's ``text_offset`` needs.

    The token texts put together can hold more than the prompt before it: the
    BOS token's text and SentencePiece's leading space ("<s> [INST]" for
    "[INST]"). Offsets inside that extra text are 0. When the token texts do
    not end with the prompt (a tokenizer that normalizes), they are offsets into
    the token texts put together.
    """
    joined = "".join(strings)
    extra = len(joined) - len(prompt) if joined.endswith(prompt) else 0
    offsets, at = [], 0
    for s in strings:
        offsets.append(max(0, at - extra))
        at += len(s)
    return offsets


def prompt_logprobs(tokenizer, scores: Scores, ids: list[int], k: int, prompt: str) -> dict:
    """Echo: each prompt token's logprob given the tokens before it (the first has none).
    ``scores``: the scores of positions 0..len(ids)-1 (position_scores, or the prefix cache's)."""
    strings = token_strings(tokenizer, ids)
    tops: list[dict | None] = [None]
    for pos in range(1, len(ids)):
        if k == 0:
            tops.append(None)
            continue
        decoder = IncrementalDecoder(tokenizer, ids[max(0, pos - 4) : pos])
        tops.append(top_alternatives(decoder, scores.top_ids[pos][:k], scores.top_values[pos][:k]))
    return {
        "tokens": strings,
        "token_ids": list(ids),
        "token_logprobs": [None] + list(scores.logprobs[1 : len(ids)]),
        "top_logprobs": tops,
        "text_offset": prompt_offsets(prompt, strings),
    }

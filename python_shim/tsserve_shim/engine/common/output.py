"""Output processing: what each chosen token does to its row (EOS, text, stop sequences, budget),
the text a streaming row may send, echo's prompt logprobs, and the GenerateOutcome of finished rows.

Shapes (src/protocol/messages.ts has the zod definitions):
- a Sequence's ``logprobs`` covers the generated tokens only; ``tokens[i]`` is the
  text token i added (concatenated they give ``text``; a token that ends inside
  a UTF-8 character adds "" and the next carries the character) and
  ``text_offset[i]`` is its start in ``text``. ``top_logprobs[i]`` maps the text
  of the ``logprobs`` most likely tokens to their logprobs (None when 0). EOS is
  not reported, except in an ``echo`` request (scoring), as a last token with text "". After a stop sequence the text is cut before it and the tokens
  that begin before the cut are kept.
- the outcome's ``prompt`` is filled only for ``echo`` requests (else all lists
  are empty): every prompt token including an added BOS, the first logprob
  None, offsets into the prompt string (``prompt_offsets``: the BOS and a
  tokenizer's leading space, absent from the prompt, start at 0).
- ``compute_time`` is the wall time from the call's admission to its answer.

Echo's prompt logprobs are made from ``Scores`` (each prompt position's logprob and best
alternatives), whichever engine computed them: the transformers engine from its logits or its prefix
cache's blocks, the vLLM engine from vLLM's prompt logprobs.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from .detokenize import IncrementalDecoder, token_strings
from .rows import CANCELLED, TIMED_OUT, Row

log = logging.getLogger(__name__)


@dataclass
class Scores:
    """Prompt logprobs of consecutive positions: position p's token given the tokens before it."""

    logprobs: list[float | None]
    top_ids: list[list[int]]
    top_values: list[list[float]]

    def __getitem__(self, positions: slice) -> "Scores":
        return Scores(self.logprobs[positions], self.top_ids[positions], self.top_values[positions])

    def __add__(self, other: "Scores") -> "Scores":
        return Scores(self.logprobs + other.logprobs, self.top_ids + other.top_ids, self.top_values + other.top_values)

    @staticmethod
    def empty() -> "Scores":
        return Scores([], [], [])

    @staticmethod
    def first() -> "Scores":
        """Position 0: a prompt's first token has no score."""
        return Scores([None], [[]], [[]])


def error_outcome(status: int, message: str, field: str | None = None) -> dict:
    """A failed GenerateOutcome; ``field``: the request field a refusal is about."""
    outcome = {"ok": False, "status": status, "message": message}
    if field is not None:
        outcome["field"] = field
    return outcome


def empty_token_logprobs() -> dict:
    return {"tokens": [], "token_ids": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}


def is_oom(error: BaseException) -> bool:
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(error, oom):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def generation_failure(error: BaseException, rows: int) -> dict:
    """The outcome of every request whose pass raised: 507 when out of memory, else 500."""
    if is_oom(error):
        log.error("tsserve: out of memory while generating %d rows: %s", rows, error)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return error_outcome(507, f"out of memory while generating: {error}")
    log.error("tsserve: generation failed", exc_info=error)
    return error_outcome(500, f"generation failed: {type(error).__name__}: {error}")


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
    }


def outcomes(prompts: Mapping[int, list[int]], rows: Sequence[Row], elapsed: float) -> dict[int, dict]:
    """The GenerateOutcome of every admitted request once its rows are done (504 when one ran out of time)."""
    result: dict[int, dict] = {}
    for index, ids in prompts.items():
        mine = [row for row in rows if row.request == index]
        late = [row for row in mine if row.finish_reason == TIMED_OUT]
        if late:
            produced = max(len(r.token_ids) for r in mine)
            result[index] = error_outcome(504, late[0].deadline.message(produced, late[0].max_tokens))
        elif any(row.finish_reason == CANCELLED for row in mine):
            result[index] = error_outcome(499, "the request was cancelled before its generation finished")
        else:
            result[index] = {
                "ok": True,
                "prompt": next((r.prompt_logprobs for r in mine if r.prompt_logprobs), None) or empty_token_logprobs(),
                "sequences": [sequence(row) for row in mine],
                "prompt_tokens": len(ids),
                "cached_tokens": mine[0].cached_tokens,
                "compute_time": elapsed,
            }
    return result


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


def position_scores(logits: torch.Tensor, ids: Sequence[int], k: int, chunk: int = 512) -> Scores:
    """The scores of positions 1..len(ids)-1 of ``ids`` from ``logits`` [len(ids), vocab] (the logits
    at every position): each next token's logprob and the k best, a chunk of positions at a time."""
    target = torch.tensor(list(ids[1:]), device=logits.device)
    scores = Scores.empty()
    for start in range(0, len(ids) - 1, chunk):
        lp = torch.log_softmax(logits[start : min(start + chunk, len(ids) - 1)].float(), dim=-1)
        scores.logprobs += lp.gather(1, target[start : start + lp.shape[0]].unsqueeze(-1)).squeeze(-1).tolist()
        if k > 0:
            v, i = lp.topk(k, dim=-1)
            scores.top_values += v.tolist()
            scores.top_ids += i.tolist()
        else:
            scores.top_values += [[] for _ in range(lp.shape[0])]
            scores.top_ids += [[] for _ in range(lp.shape[0])]
    return scores

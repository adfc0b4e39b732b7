"""The tensor side of tsserve: tokenization and batched generation with a transformers causal LM.

``Engine.generate`` takes GenerateRequest dicts and returns GenerateOutcome
dicts (src/protocol/messages.ts). One call is one pass: every row (request x
sequence) is tokenized on its own, the rows are left-padded into one batch and
decoded together by a small loop over the model's forward with a KV cache
(prefill, then one token per step), each row with its own sampling settings,
random generator, stop sequences and token budget. Rows leave the batch as
they finish. Logprobs are the log-softmax of the model's raw logits at each
step of this same loop (before repetition penalty, temperature, top-k/top-p).

Shapes (see messages.ts for the zod definitions):
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
- ``compute_time`` is the wall time of the whole pass the request was in.
"""
from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from .deadline import Deadline
from .detokenize import IncrementalDecoder, token_strings
from .kv_batching import drop_columns, join_caches, left_pad, mergeable, padding_columns
from .loading import LoadPlan, load_model, load_tokenizer, plan_load_here
from .sampling import row_key, select_tokens
from .stopping import StopMatcher

log = logging.getLogger(__name__)

OnDelta = Callable[[int, int, str, "dict | None"], None]

# A model config's max_position_embeddings is trusted up to this; beyond it the
# tokenizer's model_max_length (when smaller) wins.
_HUGE = 10**9
# A row's finish_reason when its deadline passed (its request is answered 504, never with this value).
TIMED_OUT = "timeout"


def empty_token_logprobs() -> dict:
    return {"tokens": [], "token_ids": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}


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


def keep_eos(row: "_Row", token: int, logprob: float, tops: dict | None) -> None:
    """An echo row (scoring) reports the EOS it ended on, with text "": a client that scores the prompt
    and one new token (lm-eval: ``token_logprobs[ctxlen:-1]``) finds that token there, as vLLM reports it."""
    row.offsets.append(len(row.text))
    row.tokens.append("")
    row.token_ids.append(token)
    row.logprobs.append(logprob)
    row.tops.append(tops)


def error_outcome(status: int, message: str) -> dict:
    return {"ok": False, "status": status, "message": message}


def generation_failure(error: BaseException, batch: int) -> dict:
    """The outcome of every request of a pass that raised: 507 when out of memory, else 500."""
    if _is_oom(error):
        log.error("tsserve: out of memory while generating a batch of %d: %s", batch, error)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return error_outcome(507, f"out of memory while generating: {error}")
    log.exception("tsserve: generation failed")
    return error_outcome(500, f"generation failed: {type(error).__name__}: {error}")


def _is_oom(error: BaseException) -> bool:
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(error, oom):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


@dataclass
class _Row:
    """One sequence being generated."""

    request: int
    sequence: int
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
    on_delta: "OnDelta | None" = None  # where a streaming row's new text goes
    text: str = ""
    tokens: list[str] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    tops: list[dict | None] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    streamed_chars: int = 0
    streamed_tokens: int = 0

    @property
    def done(self) -> bool:
        return self.finish_reason is not None


def _slices_logits_by_mask(model) -> bool:
    """Whether the model's forward takes a boolean (batch, length) ``logits_to_keep`` (transformers' slice_logits_to_keep)."""
    try:
        return "slice_logits_to_keep" in inspect.getsource(type(model).forward)
    except (OSError, TypeError):
        return False


class _DecodeState:
    """The running batch between steps: its rows, KV cache and per-row settings as tensors, pruned together."""

    def __init__(self, rows, cache, mask, last_pos, logits, seen, device) -> None:
        self.rows: list[_Row] = list(rows)
        self.cache = cache
        self.mask = mask
        self.last_pos = last_pos
        self.logits = logits
        self.temperature = torch.tensor([r.temperature for r in rows], dtype=torch.float32, device=device)
        self.top_k = torch.tensor([r.top_k for r in rows], dtype=torch.long, device=device)
        self.top_p = torch.tensor([r.top_p for r in rows], dtype=torch.float32, device=device)
        self.keys = torch.tensor([r.key for r in rows], dtype=torch.long, device=device)
        self.steps = torch.zeros(len(rows), dtype=torch.long, device=device)
        self.seen = seen
        self.penalty = (
            torch.tensor([r.penalty for r in rows], dtype=torch.float32, device=device) if seen is not None else None
        )
        self.chosen: torch.Tensor | None = None
        self.chosen_list: list[int] = []

    _PER_ROW = ("mask", "last_pos", "logits", "temperature", "top_k", "top_p", "keys", "steps", "seen", "penalty", "chosen")

    def take(self, chosen: torch.Tensor) -> None:
        """Record the tokens just chosen (one per row)."""
        self.chosen = chosen
        self.chosen_list = chosen.tolist()
        self.steps = self.steps + 1
        if self.seen is not None:
            self.seen.scatter_(1, chosen.unsqueeze(-1), True)

    def prune(self) -> bool:
        """Drop the rows that are done; False when none is left."""
        still = [j for j, row in enumerate(self.rows) if not row.done]
        if len(still) == len(self.rows):
            return bool(still)
        self.rows = [self.rows[j] for j in still]
        if not still:
            return False
        keep = torch.tensor(still, dtype=torch.long, device=self.mask.device)
        self.cache.batch_select_indices(keep)
        for name in self._PER_ROW:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[keep])
        self.chosen_list = [self.chosen_list[j] for j in still] if self.chosen_list else []
        self._trim()
        return True

    def _trim(self) -> None:
        """Cut the leading columns that only the rows gone needed."""
        columns = padding_columns(self.mask)
        if columns and mergeable(self.cache):
            drop_columns(self.cache, columns)
            self.mask = self.mask[:, columns:]

    def can_join(self, other: "_DecodeState") -> bool:
        return mergeable(self.cache) and mergeable(other.cache)

    def join(self, other: "_DecodeState") -> None:
        """Take in another state's rows (a batch just prefilled): both must be between steps (logits ready, nothing chosen)."""
        width = max(self.mask.shape[1], other.mask.shape[1])
        join_caches(self.cache, other.cache, width)
        self.mask = torch.cat([left_pad(self.mask, width, 1), left_pad(other.mask, width, 1)], dim=0)
        if (self.seen is None) != (other.seen is None):
            for state in (self, other):
                if state.seen is None:
                    state.seen = torch.zeros((len(state.rows), state.logits.shape[-1]), dtype=torch.bool, device=state.logits.device)
                    state.penalty = torch.ones(len(state.rows), dtype=torch.float32, device=state.logits.device)
        for name in ("last_pos", "logits", "temperature", "top_k", "top_p", "keys", "steps", "seen", "penalty"):
            mine = getattr(self, name)
            if mine is not None:
                setattr(self, name, torch.cat([mine, getattr(other, name)], dim=0))
        self.rows += other.rows
        self.chosen, self.chosen_list = None, []

    def forward(self, model) -> None:
        """Feed the chosen tokens: the next logits of every row."""
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=1)
        self.last_pos = self.last_pos + 1
        out = model(
            input_ids=self.chosen.unsqueeze(-1),
            attention_mask=self.mask,
            position_ids=self.last_pos.unsqueeze(-1),
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        self.logits = out.logits[:, -1, :].to(dtype=torch.float32)


class Engine:
    """A loaded causal LM and its tokenizer, generating GenerateRequest batches."""

    def __init__(self, model, tokenizer, *, device: str | torch.device | None = None, name_or_path: str | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.plan: LoadPlan | None = None  # set by Engine.load
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.name_or_path = name_or_path or getattr(model, "name_or_path", None) or "model"
        config = model.config
        context = getattr(config, "max_position_embeddings", None) or _HUGE
        tok_max = getattr(tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 0 < tok_max < _HUGE:
            context = min(context, tok_max)
        self.context_length = int(context)
        self.vocab_size = int(getattr(config, "vocab_size", None) or len(tokenizer))
        self.bos_token: str | None = tokenizer.bos_token
        self.eos_token: str | None = tokenizer.eos_token
        eos = getattr(model.generation_config, "eos_token_id", None) if getattr(model, "generation_config", None) else None
        if eos is None:
            eos = tokenizer.eos_token_id
        self.eos_ids: set[int] = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.pad_id = int(pad)
        self._keeps_positions_by_mask = _slices_logits_by_mask(model)

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(
        cls,
        handler_section: Mapping[str, Any],
        *,
        model_dir: str,
        gpu_id: int | None = None,
        device_type: str | None = None,
        device_ids: Sequence[int] | None = None,
    ) -> "Engine":
        """Load per the model-config.yaml ``handler:`` section (see loading.plan_load)."""
        plan: LoadPlan = plan_load_here(
            handler_section, model_dir=model_dir, gpu_id=gpu_id, device_type=device_type, device_ids=device_ids
        )
        log.info("tsserve: loading %s on %s (dtype %s, quantize %s)", plan.model_path, plan.device, plan.dtype_name, plan.quantize)
        tokenizer = load_tokenizer(plan)
        model = load_model(plan)
        engine = cls(model, tokenizer, device=plan.device, name_or_path=str(handler_section.get("model_path") or plan.model_path))
        engine.plan = plan
        return engine

    def info(self) -> dict:
        """ModelInfo."""
        return {
            "name_or_path": str(self.name_or_path),
            "context_length": self.context_length,
            "vocab_size": self.vocab_size,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "chat_template": getattr(self.tokenizer, "chat_template", None) or None,
            "device": str(self.device),
        }

    # ------------------------------------------------------------- tokenization

    def encode_prompt(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of a prompt; a prompt that already begins with the BOS text gets no second BOS."""
        if add_special_tokens and self.bos_token and text.startswith(self.bos_token):
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def prompt_ids(self, request: Mapping[str, Any]) -> list[int]:
        """A GenerateRequest's prompt ids: its ``prompt_token_ids`` as sent (never re-tokenized), else the encoded ``prompt``."""
        ids = request.get("prompt_token_ids")
        return [int(i) for i in ids] if ids is not None else self.encode_prompt(request["prompt"])

    def tokenize(self, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
        return [self.encode_prompt(t, add_special_tokens) for t in texts]

    def detokenize(self, ids: Sequence[Sequence[int]], skip_special_tokens: bool = False) -> list[str]:
        return [
            self.tokenizer.decode(list(row), skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False)
            for row in ids
        ]

    # --------------------------------------------------------------- generation

    def generate(
        self,
        requests: Sequence[Mapping[str, Any]],
        on_delta: OnDelta | None = None,
        deadlines: "Deadline | Sequence[Deadline | None] | None" = None,
    ) -> list[dict]:
        """One GenerateOutcome per GenerateRequest; requests that are refused do not fail the others.

        ``deadlines``: one Deadline for every request, or one (or None) per
        request. The decode loop checks them every step: a request whose
        deadline passes ends at once with a 504 naming the limit, the others go on.
        """
        deadlines = self.deadline_list(deadlines, len(requests))
        outcomes, prompts = self.admissible(requests)
        if prompts:
            for index, outcome in self._run_pass(requests, prompts, deadlines, on_delta).items():
                outcomes[index] = outcome
        return [o if o is not None else error_outcome(500, "no outcome") for o in outcomes]

    @staticmethod
    def deadline_list(deadlines, count: int) -> list:
        if deadlines is None or isinstance(deadlines, Deadline) or not isinstance(deadlines, (list, tuple)):
            return [deadlines] * count
        return list(deadlines)

    def admissible(self, requests) -> tuple[list[dict | None], dict[int, list[int]]]:
        """Tokenize every request: a 400 outcome for those refused, the prompt ids of the others."""
        outcomes: list[dict | None] = [None] * len(requests)
        prompts: dict[int, list[int]] = {}
        for index, request in enumerate(requests):
            try:
                ids = self.prompt_ids(request)
                problem = self._check_lengths(len(ids), int(request["max_tokens"]))
            except Exception as error:  # noqa: BLE001 - a bad request must not fail its batch mates
                outcomes[index] = error_outcome(400, f"cannot tokenize the prompt: {error}")
                continue
            if problem:
                outcomes[index] = error_outcome(400, problem)
            else:
                prompts[index] = ids
        return outcomes, prompts

    def _check_lengths(self, prompt_tokens: int, max_tokens: int) -> str | None:
        if prompt_tokens == 0:
            return "the prompt is empty (0 tokens)"
        if prompt_tokens > self.context_length:
            return (
                f"the prompt has {prompt_tokens} tokens, more than the model's context length of "
                f"{self.context_length} tokens"
            )
        if prompt_tokens + max_tokens > self.context_length:
            return (
                f"the prompt has {prompt_tokens} tokens and max_tokens is {max_tokens}: "
                f"{prompt_tokens} + {max_tokens} = {prompt_tokens + max_tokens} is more than the model's context "
                f"length of {self.context_length} tokens (at most {self.context_length - prompt_tokens} new tokens fit)"
            )
        return None

    def _run_pass(self, requests, prompts: dict[int, list[int]], deadlines, on_delta: OnDelta | None) -> dict[int, dict]:
        started = time.perf_counter()
        try:
            with torch.inference_mode():
                rows = self._make_rows(requests, prompts, deadlines, on_delta)
                prompt_lp = self._decode_loop(requests, rows)
        except Exception as error:  # noqa: BLE001
            return {i: generation_failure(error, len(prompts)) for i in prompts}
        return self.outcomes(prompts, rows, prompt_lp, time.perf_counter() - started)

    def outcomes(self, prompts: dict[int, list[int]], rows: list[_Row], prompt_lp: dict[int, dict], elapsed: float) -> dict[int, dict]:
        """The GenerateOutcome of every admitted request once its rows are done (504 when one ran out of time)."""
        result: dict[int, dict] = {}
        for index, ids in prompts.items():
            mine = [row for row in rows if row.request == index]
            late = [row for row in mine if row.finish_reason == TIMED_OUT]
            if late:
                result[index] = error_outcome(
                    504, late[0].deadline.message(max(len(r.token_ids) for r in mine), late[0].max_tokens)
                )
                continue
            result[index] = {
                "ok": True,
                "prompt": prompt_lp.get(index) or empty_token_logprobs(),
                "sequences": [self._sequence(row) for row in mine],
                "prompt_tokens": len(ids),
                "compute_time": elapsed,
            }
        return result

    def _make_rows(self, requests, prompts: dict[int, list[int]], deadlines, on_delta: OnDelta | None = None) -> list[_Row]:
        rows: list[_Row] = []
        for index, ids in prompts.items():
            request = requests[index]
            temperature = float(request.get("temperature", 0.0))
            stops = StopMatcher(request.get("stop") or [])
            for sequence in range(int(request.get("num_sequences", 1))):
                rows.append(
                    _Row(
                        request=index,
                        sequence=sequence,
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
                        decoder=IncrementalDecoder(self.tokenizer, ids),
                        on_delta=on_delta,
                    )
                )
        return rows

    def _prefill(self, rows: list[_Row]) -> tuple[_DecodeState, dict[int, torch.Tensor]]:
        """One forward over the left-padded prompts. Returns the decode state (next-token
        logits of every row) and, for the first row of each echo request, the logits of
        its prompt positions; only those rows' positions go through the LM head."""
        from transformers import DynamicCache

        device = self.device
        width = max(len(r.prompt_ids) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            n = len(row.prompt_ids)
            input_ids[i, width - n :] = torch.tensor(row.prompt_ids, dtype=torch.long)
            mask[i, width - n :] = 1
        input_ids, mask = input_ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)

        firsts: dict[int, int] = {}
        for i, row in enumerate(rows):
            if row.echo:
                firsts.setdefault(row.request, i)
        echo_rows = set(firsts.values())
        keep: torch.Tensor | int = 1
        if echo_rows:
            keep = 0
            if self._keeps_positions_by_mask:
                keep = torch.zeros((len(rows), width), dtype=torch.bool, device=device)
                keep[:, -1] = True
                for i in echo_rows:
                    keep[i, width - len(rows[i].prompt_ids) :] = True
        cache = DynamicCache(config=self.model.config)
        out = self.model(
            input_ids=input_ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=keep
        )
        cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        echo_logits: dict[int, torch.Tensor] = {}
        if isinstance(keep, torch.Tensor):
            flat = out.logits.reshape(-1, out.logits.shape[-1])
            ends = keep.sum(-1).cumsum(0)
            last = flat[ends - 1]
            starts = (ends - keep.sum(-1)).tolist()
            for i in echo_rows:
                echo_logits[i] = flat[starts[i] : int(ends[i])]
        else:
            last = out.logits[:, -1, :]
            for i in echo_rows:
                echo_logits[i] = out.logits[i, width - len(rows[i].prompt_ids) :]
        seen = None
        if any(r.penalty != 1.0 for r in rows):
            seen = torch.zeros((len(rows), last.shape[-1]), dtype=torch.bool, device=device)
            real = torch.where(mask.bool(), input_ids, input_ids[:, -1:])  # the last column is never padding
            seen.scatter_(1, real, True)
        state = _DecodeState(rows, cache, mask, positions[:, -1], last.to(device=device, dtype=torch.float32), seen, device)
        return state, echo_logits

    def start(self, requests, rows: list[_Row]) -> tuple[_DecodeState | None, dict[int, dict]]:
        """Prefill the rows that are still in time: their decode state (None when no row
        needs a token) and the echo requests' prompt logprobs."""
        self._expire(rows)
        live = [row for row in rows if not row.done]
        prompt_lp: dict[int, dict] = {}
        if not live:
            return None, prompt_lp
        state, echo_logits = self._prefill(live)
        for i, logits in echo_logits.items():
            row = live[i]
            prompt_lp[row.request] = self._prompt_logprobs(logits, row.prompt_ids, row.k, requests[row.request]["prompt"])
        del echo_logits
        for row in live:
            if row.max_tokens == 0:
                row.finish_reason = "length"
        return (state if state.prune() else None), prompt_lp

    def _decode_loop(self, requests, rows: list[_Row]) -> dict[int, dict]:
        """Generate every row to its end (or its deadline); returns the echo requests' prompt logprobs."""
        state, prompt_lp = self.start(requests, rows)
        while state is not None and state.rows:
            self.step(state)
            self._expire(state.rows)
            if not state.prune():
                break
            state.forward(self.model)
        return prompt_lp

    def step(self, state: _DecodeState) -> None:
        """Choose every row's next token from the state's logits and take it into the row."""
        logits = state.logits
        chosen = select_tokens(
            logits,
            temperature=state.temperature,
            top_k=state.top_k,
            top_p=state.top_p,
            penalty=state.penalty,
            seen=state.seen,
            keys=state.keys,
            steps=state.steps,
        )
        total = torch.logsumexp(logits, dim=-1)
        chosen_lp = (logits.gather(1, chosen.unsqueeze(-1)).squeeze(-1) - total).tolist()
        k_max = max(r.k for r in state.rows)
        top_vals = top_ids = None
        if k_max > 0:
            values, indices = logits.topk(k_max, dim=-1)
            top_vals, top_ids = (values - total.unsqueeze(-1)).tolist(), indices.tolist()
        state.take(chosen)
        for j, (row, token) in enumerate(zip(state.rows, state.chosen_list)):
            tops = None
            if row.k > 0:
                tops = {}
                for text, value in zip(row.decoder.alternatives(top_ids[j][: row.k]), top_vals[j][: row.k]):
                    tops.setdefault(text, value)
            self._advance(row, token, chosen_lp[j], tops)
            if row.stream and row.on_delta is not None:
                self._stream(row, row.on_delta)

    @staticmethod
    def _expire(rows: Sequence[_Row]) -> None:
        """End the rows whose deadline has passed (they leave the batch; their request is answered 504)."""
        now = None
        for row in rows:
            if row.deadline is not None and not row.done:
                now = time.monotonic() if now is None else now
                if row.deadline.passed(now):
                    row.finish_reason = TIMED_OUT

    def _advance(self, row: _Row, token: int, logprob: float, tops: dict | None) -> None:
        """Take one chosen token into a row: EOS, text, stop sequences, budget."""
        if token in self.eos_ids:
            row.finish_reason = "stop"
            self._flush(row)
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
                self._cut(row, at)
                row.finish_reason = "stop"
                return
        if len(row.token_ids) >= row.max_tokens:
            row.finish_reason = "length"
            self._flush(row)

    def _flush(self, row: _Row) -> None:
        tail = row.decoder.flush()
        if tail and row.tokens:
            row.tokens[-1] += tail
            row.text += tail

    @staticmethod
    def _cut(row: _Row, at: int) -> None:
        """Cut the text before a stop; keep the tokens that begin before the cut."""
        row.text = row.text[:at]
        keep = sum(1 for offset in row.offsets if offset < at)
        for name in ("tokens", "token_ids", "logprobs", "tops", "offsets"):
            del getattr(row, name)[keep:]

    def _stream(self, row: _Row, on_delta: OnDelta) -> None:
        """Send what can no longer turn into a stop sequence (everything, once the row is done)."""
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
        on_delta(row.request, row.sequence, text, self._token_logprobs(row, first, last))

    @staticmethod
    def _token_logprobs(row: _Row, first: int = 0, last: int | None = None) -> dict:
        sl = slice(first, last)
        return {
            "tokens": row.tokens[sl],
            "token_ids": row.token_ids[sl],
            "token_logprobs": row.logprobs[sl],
            "top_logprobs": row.tops[sl],
            "text_offset": row.offsets[sl],
        }

    def _sequence(self, row: _Row) -> dict:
        return {
            "text": row.text,
            "finish_reason": row.finish_reason or "length",
            "logprobs": self._token_logprobs(row),
            "cumulative_logprob": float(sum(row.logprobs)),
        }

    def _prompt_logprobs(self, logits: torch.Tensor, ids: list[int], k: int, prompt: str) -> dict:
        """Echo: each prompt token's logprob given the tokens before it (the first has none)."""
        strings = token_strings(self.tokenizer, ids)
        offsets = prompt_offsets(prompt, strings)
        token_lp: list[float | None] = [None]
        tops: list[dict | None] = [None]
        if len(ids) > 1:
            target = torch.tensor(ids[1:], device=logits.device)
            values: list[float] = []
            top_vals: list[list[float]] = []
            top_ids: list[list[int]] = []
            chunk = 512
            for start in range(0, len(ids) - 1, chunk):
                lp = torch.log_softmax(logits[start : min(start + chunk, len(ids) - 1)].float(), dim=-1)
                values += lp.gather(1, target[start : start + lp.shape[0]].unsqueeze(-1)).squeeze(-1).tolist()
                if k > 0:
                    v, i = lp.topk(k, dim=-1)
                    top_vals += v.tolist()
                    top_ids += i.tolist()
            token_lp += values
            for pos in range(1, len(ids)):
                if k == 0:
                    tops.append(None)
                    continue
                context = ids[max(0, pos - 4) : pos]
                decoder = IncrementalDecoder(self.tokenizer, context)
                entry: dict[str, float] = {}
                for text, value in zip(decoder.alternatives(top_ids[pos - 1]), top_vals[pos - 1]):
                    entry.setdefault(text, value)
                tops.append(entry)
        return {
            "tokens": strings,
            "token_ids": list(ids),
            "token_logprobs": token_lp,
            "top_logprobs": tops,
            "text_offset": offsets,
        }

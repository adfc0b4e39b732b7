"""Structured output on the transformers engine: a GenerateRequest's ``structured`` (a JSON Schema,
any JSON object, a regex or a list of choices: common/structured.py) as a grammar that masks every
token that would leave its language, one matcher per row. The vLLM engine passes the same to vLLM
(vllm/structured.py).

The grammar library is xgrammar (the one vLLM's structured outputs use by default, so both engines
accept the same schemas and write JSON the same way). Per step, a constrained row costs one
bitmask fill (a few microseconds for a nested schema on SmolLM2's 49k vocabulary) and one masked
copy of the logits; compiling a schema takes milliseconds and is cached by the compiler.

JSON may have whitespace between its tokens where JSON allows it, as vLLM's default (its
``disable_any_whitespace`` is an engine setting, off): the model writes JSON as it learnt to (SmolLM2
indents it). Here a run of whitespace is capped at MAX_WHITESPACE characters (deep indentation
fits): given free whitespace, SmolLM2 once wrote newlines after a comma until max_tokens ran out
(vLLM has no per-request cap). Properties come in the schema's order.
The row's end-of-sequence tokens are the grammar's stop tokens: EOS is allowed only once the text is
complete, so a row that stops by itself holds a valid text, and one cut by ``max_tokens`` a prefix.

Reported logprobs stay the model's own (before the mask), as vLLM reports them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..common.structured import StructureError, structure_kind
from ..contract import GenerateRequest, error_outcome
from .batch import DecodeRow

MAX_WHITESPACE = 20

# xgrammar's C++ errors begin "[hh:mm:ss] /path/file.cc:123: "; the rest is the reason.
_CPP_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: (Check failed: \(.*?\) is false: )?")


def choice_grammar(choices: Sequence[str]) -> str:
    """An EBNF grammar whose language is exactly ``choices`` (JSON string literals are EBNF literals)."""
    if not choices:
        raise StructureError("structured.choice must list at least one string")
    return "root ::= " + " | ".join(json.dumps(str(choice), ensure_ascii=False) for choice in choices)


def error_reason(error: BaseException) -> str:
    """xgrammar's message without its source position."""
    return _CPP_PREFIX.sub("", str(error).strip()).strip()


class Grammars:
    """The engine's grammar compiler (built on first use) and the per-row matchers it makes."""

    def __init__(self, tokenizer, vocab_size: int) -> None:
        self.tokenizer = tokenizer
        self.vocab_size = int(vocab_size)
        self._compiler = None

    @property
    def compiler(self):
        if self._compiler is None:
            import xgrammar

            info = xgrammar.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=self.vocab_size)
            self._compiler = xgrammar.GrammarCompiler(info, max_threads=min(8, os.cpu_count() or 1), cache_enabled=True)
        return self._compiler

    def compile(self, structured: Mapping[str, Any]):
        """The compiled grammar of one ``structured`` (StructureError naming what is wrong)."""
        kind = structure_kind(structured)
        value = structured[kind]
        try:
            if kind == "json_schema":
                return self.compiler.compile_json_schema(json.dumps(value), max_whitespace_cnt=MAX_WHITESPACE)
            if kind == "json_object":
                return self.compiler.compile_json_schema('{"type": "object"}', max_whitespace_cnt=MAX_WHITESPACE)
            if kind == "regex":
                return self.compiler.compile_regex(str(value))
            return self.compiler.compile_grammar(choice_grammar(value))
        except StructureError:
            raise
        except (RuntimeError, ValueError, TypeError) as error:
            raise StructureError(f"structured.{kind}: {error_reason(error)}") from error

    def matcher(self, structured: Mapping[str, Any], stop_ids: set[int]):
        import xgrammar

        return xgrammar.GrammarMatcher(self.compile(structured), override_stop_tokens=sorted(stop_ids))

    # ------------------------------------------------------------ admission

    def refuse_unsupported(self, requests: Sequence[GenerateRequest], outcomes: list, prompts: dict) -> None:
        """Answer 400 to the admitted requests whose ``structured`` does not compile (they leave ``prompts``)."""
        for index in [i for i in prompts if requests[i].structured is not None]:
            try:
                self.compile(requests[index].structured)
            except StructureError as error:
                outcomes[index] = error_outcome(400, str(error))
                del prompts[index]

    # ------------------------------------------------------------ decode step

    def constrain(self, rows: Sequence[DecodeRow], logits: torch.Tensor, stop_ids: set[int]) -> torch.Tensor:
        """The logits to choose from: a copy with every token outside a constrained row's grammar at
        -inf, or ``logits`` itself when no row is constrained."""
        constrained = [j for j, row in enumerate(rows) if row.structured is not None and not row.done]
        if not constrained:
            return logits
        import xgrammar

        bitmask = xgrammar.allocate_token_bitmask(len(rows), logits.shape[-1])
        for j in constrained:
            row = rows[j]
            if row.grammar is None:
                row.grammar = self.matcher(row.structured, stop_ids)
            row.grammar.fill_next_token_bitmask(bitmask, j)
        masked = logits.clone()
        every_row = len(constrained) == len(rows)  # xgrammar's kernel is faster without indices
        xgrammar.apply_token_bitmask_inplace(masked, bitmask.to(masked.device), indices=None if every_row else constrained)
        return masked

    @staticmethod
    def accept(rows: Sequence[DecodeRow], tokens: Sequence[int]) -> None:
        """Advance each constrained row's matcher by the token it just took."""
        for row, token in zip(rows, tokens):
            if row.grammar is not None and not row.grammar.is_terminated() and not row.grammar.accept_token(int(token)):
                raise RuntimeError(f"the grammar refused token {token}, which its own mask allowed")

"""Limits that keep one request from hurting the others.

TorchServe's max_response_size, as the frontend that started this worker reads it.

The frontend checks every response body the worker sends against
max_response_size; one over it makes the frontend drop the worker and every
request on it (`TooLongFrameException`). The worker is not told the limit, so
the shim reads it where the frontend did: the `-f FILE` on the frontend's
command line (torchserve --ts-config), else $TS_CONFIG_FILE, with
$TS_MAX_RESPONSE_SIZE (read by TorchServe under enable_envvars_config) taken
when it is smaller.

GenerateLimits: the rows and prompt bytes one request may ask of the engine,
checked before any tokenizing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..model.handler_config import HandlerConfig
from .frontend import frontend_config_file, parse_properties, read_text

log = logging.getLogger(__name__)

TORCHSERVE_DEFAULT_MAX_RESPONSE_SIZE = 6553500


def _size(value: str | None, source: str) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        size = int(value.strip())
    except ValueError:
        log.warning("tsserve: ignoring max_response_size %r from %s: not an integer", value, source)
        return None
    return size if size > 0 else None


def max_response_size(environ: Mapping[str, str] = os.environ, config_file: str | None = None) -> int:
    """The largest response body (in bytes) the frontend accepts from this worker."""
    path = config_file or frontend_config_file() or environ.get("TS_CONFIG_FILE")
    text = read_text(path) if path else None
    from_file = _size(parse_properties(text).get("max_response_size"), path) if text is not None else None
    from_env = _size(environ.get("TS_MAX_RESPONSE_SIZE"), "$TS_MAX_RESPONSE_SIZE")
    limits = [size for size in (from_file, from_env) if size is not None]
    return min(limits) if limits else TORCHSERVE_DEFAULT_MAX_RESPONSE_SIZE


# ------------------------------------------------------------------ generate calls

# More UTF-8 bytes than any token holds: a prompt longer than context_length * this cannot fit the context,
# and is refused before it is tokenized (a 6 MB prompt would pause every stream while it is).
MAX_BYTES_PER_TOKEN = 64
# A tokenize call may hold this many contexts' worth of text (a document to count or split), a detokenize call this
# many contexts' worth of ids; at least 1 MiB of text and 256 Ki ids.
TEXT_CONTEXTS_PER_CALL = 8
MIN_TEXT_BYTES_PER_CALL = 1 << 20
MIN_IDS_PER_CALL = 1 << 18


@dataclass(frozen=True)
class GenerateLimits:
    """What one request may ask of the engine: rows (prompts × n × best_of) and prompt bytes."""

    max_rows: int
    max_prompt_bytes: int
    max_text_bytes: int = MIN_TEXT_BYTES_PER_CALL  # of one tokenize call
    max_text_ids: int = MIN_IDS_PER_CALL  # of one detokenize call

    @classmethod
    def from_config(cls, config: HandlerConfig, context_length: int) -> GenerateLimits:
        return cls(
            max_rows=config.max_rows,
            max_prompt_bytes=int(context_length) * MAX_BYTES_PER_TOKEN,
            max_text_bytes=max(MIN_TEXT_BYTES_PER_CALL, TEXT_CONTEXTS_PER_CALL * int(context_length) * MAX_BYTES_PER_TOKEN),
            max_text_ids=max(MIN_IDS_PER_CALL, TEXT_CONTEXTS_PER_CALL * int(context_length)),
        )

    def text_refusal(self, method: str, params: Mapping) -> str | None:
        """Why a tokenize or detokenize call is refused before any work (its size), or None."""
        if method == "tokenize":
            size = sum(_utf8_bytes(text) for text in params.get("texts") or [] if isinstance(text, str))
            if size > self.max_text_bytes:
                return (
                    f"tokenize: {size:,} bytes of text in one call, more than the {self.max_text_bytes:,} allowed "
                    f"({TEXT_CONTEXTS_PER_CALL} times the model's context at {MAX_BYTES_PER_TOKEN} bytes a token, at least 1 MiB)"
                )
        elif method == "detokenize":
            count = sum(len(row) for row in params.get("ids") or [] if isinstance(row, list))
            if count > self.max_text_ids:
                return (
                    f"detokenize: {count:,} token ids in one call, more than the {self.max_text_ids:,} allowed "
                    f"({TEXT_CONTEXTS_PER_CALL} times the model's context, at least {MIN_IDS_PER_CALL:,})"
                )
        return None

    def refusal(self, requests: list, request_count: int = 1) -> str | None:
        """Why a generate call (for ``request_count`` HTTP requests) is refused before any work, or None."""
        rows = sum(int(request.get("num_sequences", 1)) for request in requests)
        if rows > self.max_rows * request_count:
            field = "n" if any(int(request.get("num_sequences", 1)) > 1 for request in requests) else "prompt"
            return (
                f"{field}: the request asks for {rows} sequences at once (prompts × n × best_of), more than the "
                f"{self.max_rows} allowed (handler.max_rows_per_request, default handler.max_num_seqs)"
            )
        for index, request in enumerate(requests):
            size = _utf8_bytes(request.get("prompt") or "")
            if size > self.max_prompt_bytes:
                field = "prompt" if len(requests) == 1 else f"prompt.{index}"
                return (
                    f"{field}: {size:,} bytes, more than fit the model's context "
                    f"({self.max_prompt_bytes // MAX_BYTES_PER_TOKEN:,} tokens, at most {self.max_prompt_bytes:,} bytes)"
                )
        return None


def _utf8_bytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))

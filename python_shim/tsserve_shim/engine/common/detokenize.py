"""Incremental detokenization: the text each new token adds, spaces and multi-byte characters right.

Decoding a token alone loses what depends on its neighbours (SentencePiece's
leading space, UTF-8 characters split over byte tokens), so each token is
decoded together with the token(s) before it and the new text is the
difference. A token that ends in the middle of a character adds "" and the
token that completes it carries the whole character.
"""

from __future__ import annotations

from collections.abc import Sequence

REPLACEMENT = "\ufffd"
# Prompt tokens kept as left context for the first generated tokens.
CONTEXT_TOKENS = 4


class IncrementalDecoder:
    def __init__(self, tokenizer, context_ids: Sequence[int] = ()):
        self.tokenizer = tokenizer
        self.ids: list[int] = list(context_ids[-CONTEXT_TOKENS:]) if context_ids else []
        self.prefix_offset = 0
        self.read_offset = len(self.ids)
        self._prefix_text: str | None = None

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def prefix_text(self) -> str:
        if self._prefix_text is None:
            self._prefix_text = self._decode(self.ids[self.prefix_offset : self.read_offset])
        return self._prefix_text

    def alternatives(self, token_ids: Sequence[int]) -> list[str]:
        """The text each of ``token_ids`` would add if it came next (for top_logprobs keys)."""
        if not token_ids:
            return []
        window = self.ids[self.prefix_offset :]
        prefix = self._decode(window)
        texts = self.tokenizer.batch_decode(
            [window + [t] for t in token_ids], skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
        return [text[len(prefix) :] if text.startswith(prefix) else text for text in texts]

    def step(self, token_id: int) -> str:
        """Append one token; return the text it completes ("" while a character is still incomplete)."""
        self.ids.append(int(token_id))
        prefix = self.prefix_text()
        text = self._decode(self.ids[self.prefix_offset :])
        if len(text) > len(prefix) and not text.endswith(REPLACEMENT):
            self.prefix_offset = self.read_offset
            self.read_offset = len(self.ids)
            self._prefix_text = None
            return text[len(prefix) :]
        return ""

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character at the very end), as decoded."""
        if self.read_offset == len(self.ids):
            return ""
        prefix = self.prefix_text()
        text = self._decode(self.ids[self.prefix_offset :])
        self.prefix_offset = self.read_offset
        self.read_offset = len(self.ids)
        self._prefix_text = None
        return text[len(prefix) :]


def token_strings(tokenizer, ids: Sequence[int]) -> list[str]:
    """The text each token of a whole sequence adds (the prompt's tokens for echo)."""
    decoder = IncrementalDecoder(tokenizer)
    out = [decoder.step(t) for t in ids]
    tail = decoder.flush()
    if tail and out:
        out[-1] += tail
    return out

"""Newline-delimited JSON framing, the Python twin of src/protocol/framing.ts.

Each chunk is scanned once for newlines; a message over the size cap is
dropped (and reported) without being buffered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Message:
    value: Any


@dataclass(frozen=True)
class Invalid:
    line: str
    error: str


@dataclass(frozen=True)
class Oversize:
    size: int


Frame = Message | Invalid | Oversize


class LineReader:
    def __init__(self, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self._max_bytes = max_bytes
        self._buffer = bytearray()
        self._discarding = False

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)

    def push(self, chunk: bytes) -> list[Frame]:
        frames: list[Frame] = []
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl == -1:
                break
            if self._discarding:
                self._discarding = False
            elif len(self._buffer) + nl - start > self._max_bytes:
                frames.append(Oversize(len(self._buffer) + nl - start))
            else:
                # orjson parses a bytearray or a memoryview in place: no copy of the line.
                if self._buffer:
                    self._buffer += memoryview(chunk)[start:nl]
                    line = self._buffer
                else:
                    line = memoryview(chunk)[start:nl]
                frame = _decode_line(line)
                if frame is not None:
                    frames.append(frame)
            self._buffer.clear()
            start = nl + 1
        rest = len(chunk) - start
        if rest > 0 and not self._discarding:
            if len(self._buffer) + rest > self._max_bytes:
                frames.append(Oversize(len(self._buffer) + rest))
                self._buffer.clear()
                self._discarding = True
            else:
                self._buffer += chunk[start:]
        return frames


def _decode_line(line: bytearray | memoryview) -> Frame | None:
    end = len(line)
    if end and line[end - 1] == 13:  # "\r"
        end -= 1
    if not end:
        return None
    view = memoryview(line)[:end] if end != len(line) else line
    try:
        return Message(orjson.loads(view))
    except orjson.JSONDecodeError as error:
        text = bytes(memoryview(line)[: min(end, 200)]).decode("utf-8", "replace")
        return Invalid(text, str(error))


class Unencodable(ValueError):
    """A message JSON cannot carry: an integer beyond 64 bits, a lone surrogate, nesting deeper than 254."""


def encode_message(message: Any) -> bytes:
    try:
        return orjson.dumps(message, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError as error:
        raise Unencodable(str(error)) from None

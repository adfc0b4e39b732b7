"""The layout of a TorchServe 0.12 worker's reply frame, checked before it is written.

A reply is: status, message, then per prediction its request id, content type, status, reason
phrase, headers and body, then -1. Every string and body is framed by its length in bytes (big-endian
int32). A frame whose lengths do not add up is read by the frontend from the wrong offset, which it
reports as a `TooLongFrameException` and answers by dropping the worker with everything in flight.
"""

from __future__ import annotations

import struct

_INT = struct.Struct("!i")
END = -1


class _Reader:
    def __init__(self, data) -> None:
        self.data = memoryview(data)
        self.at = 0

    def int(self, what: str) -> int:
        if self.at + 4 > len(self.data):
            raise ValueError(f"{what} at byte {self.at} runs past the frame's end ({len(self.data)} bytes)")
        (value,) = _INT.unpack_from(self.data, self.at)
        self.at += 4
        return value

    def skip(self, what: str) -> None:
        length = self.int(f"{what}'s length")
        if length < 0 or self.at + length > len(self.data):
            raise ValueError(f"{what}'s length {length} at byte {self.at - 4} does not fit the frame ({len(self.data)} bytes)")
        self.at += length


def frame_problem(data) -> str | None:
    """What is wrong with a reply frame's layout, or None when its lengths add up to exactly its size."""
    reader = _Reader(data)
    try:
        reader.int("status")
        reader.skip("message")
        while True:
            id_length = reader.int("request id's length")
            if id_length == END:
                break
            reader.at -= 4
            reader.skip("request id")
            reader.skip("content type")
            reader.int("prediction status")
            reader.skip("reason phrase")
            for _ in range(reader.int("header count")):
                reader.skip("header name")
                reader.skip("header value")
            reader.skip("body")
    except ValueError as error:
        return str(error)
    if reader.at != len(reader.data):
        return f"{len(reader.data) - reader.at} bytes follow the end of the list at byte {reader.at}"
    return None

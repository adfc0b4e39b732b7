"""The reply frame check against frames TorchServe 0.12's own encoder builds."""

import struct

import pytest
from ts.context import Context, RequestProcessor
from ts.protocol.otf_message_handler import create_load_model_response, create_predict_response

from tsserve_shim.worker.frames import frame_problem


def _context(requests: int) -> Context:
    context = Context("m", "/tmp", {}, 1, None, "0.12")
    context.request_processor = [RequestProcessor({}) for _ in range(requests)]
    return context


def _reply(bodies: list) -> bytearray:
    context = _context(len(bodies))
    ids = {index: f"req-{index}" for index in range(len(bodies))}
    for index in range(len(bodies)):
        context.set_response_content_type(index, "application/json")
        context.set_response_header(index, "x-tsserve", "é")
    context.set_response_status(400, "bad prompt", 1 if len(bodies) > 1 else 0)
    return create_predict_response(bodies, ids, "Prediction success", 200, context)


@pytest.mark.parametrize(
    "frame",
    [
        _reply(['{"text": "héllo"}', b"\x00\x01"]),
        _reply([""]),
        create_predict_response(None, {0: "a", 1: "b"}, "Out of resources", 507),
        create_load_model_response(200, "loaded"),
    ],
)
def test_torchserves_own_frames_add_up(frame):
    assert frame_problem(frame) is None


def test_a_body_cut_short_is_named():
    frame = _reply(['{"tokens": ["d","e"]}'])
    assert "body's length" in frame_problem(frame[:-10])


def test_a_length_counted_in_characters_is_named():
    """TorchServe frames a reason phrase by its length in characters: non-ASCII text misframes the reply."""
    context = _context(1)
    context.set_response_status(400, "max_tokens: must be ≥ 0", 0)
    problem = frame_problem(create_predict_response(["{}"], {0: "r"}, "Prediction success", 200, context))
    assert problem is not None


def test_two_frames_interleaved_are_named():
    first, second = _reply(['["d","e","f"]' * 50]), _reply(["{}"])
    mixed = first[:40] + second + first[40:]
    assert frame_problem(mixed) is not None
    assert "bytes follow the end" in frame_problem(first + struct.pack("!i", 7))

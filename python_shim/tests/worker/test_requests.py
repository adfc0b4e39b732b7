"""The shim's handling of TorchServe's input rows and HTTP error replies."""

import math

import pytest

from tsserve_shim.worker.replies import reason_phrase
from tsserve_shim.worker.requests import decode_body


@pytest.mark.parametrize(
    "body, field",
    [
        ({"prompt": "x", "temperature": math.inf}, "temperature"),
        ({"prompt": "x", "temperature": -math.inf}, "temperature"),
        ({"prompt": "x", "top_p": math.nan}, "top_p"),
        ({"messages": [{"role": "user", "content": "x", "weight": math.nan}]}, "messages.0.weight"),
        (math.nan, "body"),
    ],
)
def test_a_body_torchserve_decoded_with_nan_or_infinity_is_refused_naming_the_field(body, field):
    # TorchServe's worker decodes application/json bodies with Python's json, which accepts NaN and 1e999.
    decoded = decode_body({"body": body})
    assert decoded["body"] is None
    assert decoded["body_error"].startswith(f"{field}: must be a finite number")


def test_finite_bodies_pass_unchanged():
    body = {"prompt": "x", "temperature": 0.5, "stop": ["a"], "n": 1, "nested": {"x": [1.5, None, True]}}
    assert decode_body({"body": body}) == {"body": body}


def test_raw_bytes_with_infinity_are_not_json():
    assert decode_body({"body": b'{"temperature": 1e999}'})["body_error"].startswith("body: is not valid JSON")


@pytest.mark.parametrize(
    "message, phrase",
    [
        ("max_tokens: must be ≥ 0", "max_tokens: must be >= 0"),
        ("temperature: must be ≤ 2", "temperature: must be <= 2"),
        ('messages.0.role: got "wizärd"', 'messages.0.role: got "wiz?rd"'),
        ("two\nlines\r\nhere", "two lines here"),
        ("x" * 500, "x" * 200),
    ],
)
def test_reason_phrases_are_one_line_of_ascii(message, phrase):
    # TorchServe 0.12 frames the phrase by its length in characters and writes UTF-8 bytes:
    # a non-ASCII phrase corrupts the worker's reply and the frontend kills the worker.
    assert reason_phrase(message) == phrase
    assert reason_phrase(message).isascii()


def nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "body, error",
    [
        ({"prompt": "Hello", "max_tokens": 2, "x": 2**64}, "x: the integer 18446744073709551616 is out of range"),
        ({"prompt": "Hello", "seed": -(2**63) - 1}, "seed: the integer -9223372036854775809 is out of range"),
        ({"prompt": [1, 2, 2**70]}, "prompt.2: the integer 1180591620717411303424 is out of range"),
        ({"prompt": "a\ud800b"}, "prompt: contains a lone surrogate (\\ud800 at character 1)"),
        ({"messages": [{"role": "user", "content": "x\udfff"}]}, "messages.0.content: contains a lone surrogate (\\udfff"),
        ({"prompt": "x", "\udc80": 1}, "body: a key contains a lone surrogate"),
        ({"prompt": "x", "extra": nested(300)}, "extra: nested deeper than 200 levels"),
    ],
)
def test_a_body_the_channel_to_node_cannot_carry_is_refused_naming_the_field(body, error):
    # TorchServe's json.loads accepts all of these; orjson (the channel to Node) encodes none of them.
    decoded = decode_body({"body": body})
    assert decoded["body"] is None
    assert decoded["body_error"].startswith(error)


def test_what_the_channel_carries_passes_unchanged():
    body = {"prompt": [0, 2**64 - 1, -(2**63)], "text": "héllo ✓ 😀", "deep": nested(199)}
    assert decode_body({"body": body}) == {"body": body}


def test_a_json_string_body_torchserve_decoded_is_passed_on_as_a_string_not_called_invalid_json():
    from ts.context import Context, RequestProcessor

    from tsserve_shim.worker.requests import decoded_by_torchserve

    context = Context("m", "/tmp", {}, 2, None, "0.12.0")
    context.request_processor = [
        RequestProcessor({"body": {"content-type": "application/json"}}),
        RequestProcessor({"body": {"content-type": "text/plain"}}),
    ]
    assert [decoded_by_torchserve(context, i) for i in range(2)] == [True, False]
    assert decode_body({"body": "hi"}, decoded_json=True) == {"body": "hi"}  # the client sent "hi", quotes and all
    assert decode_body({"body": "hi"})["body_error"].startswith("body: is not valid JSON")  # text/plain: the text itself
    assert decode_body({"body": '{"prompt": "x"}'}) == {"body": {"prompt": "x"}}

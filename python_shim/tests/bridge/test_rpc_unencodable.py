"""A message JSON cannot carry (an integer beyond 64 bits, a lone surrogate, nesting deeper than
254) fails alone: the peer answers it with an error and keeps its channel."""

import os

import orjson
import pytest
from peer_calls import call

from tsserve_shim.bridge.errors import INTERNAL_ERROR, INVALID_PARAMS, RpcError
from tsserve_shim.bridge.rpc import Peer


def nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


UNENCODABLE = [2**64, "a\ud800b", nested(300)]


@pytest.fixture
def pipes():
    incoming_r, incoming_w = os.pipe()
    outgoing_r, outgoing_w = os.pipe()
    yield incoming_r, incoming_w, outgoing_r, outgoing_w
    for fd in (incoming_r, incoming_w, outgoing_r, outgoing_w):
        os.close(fd)


def written(fd) -> list:
    os.set_blocking(fd, False)
    try:
        data = os.read(fd, 1 << 20)
    except BlockingIOError:
        data = b""
    return [orjson.loads(line) for line in data.split(b"\n") if line]


@pytest.mark.parametrize("value", UNENCODABLE, ids=["big-integer", "lone-surrogate", "deep-nesting"])
def test_an_async_request_with_unencodable_params_is_answered_with_an_error_and_nothing_is_sent(pipes, value):
    incoming_r, _, outgoing_r, outgoing_w = pipes
    peer = Peer(incoming_r, outgoing_w)
    answers = []
    peer.request_async("handle", {"x": value}, answers.append)
    peer.request_async("handle", {"x": 1}, answers.append)
    assert len(answers) == 1 and answers[0]["error"]["code"] == INVALID_PARAMS
    assert answers[0]["error"]["message"].startswith("the params of handle cannot be sent to the handler process:")
    assert [m["params"] for m in written(outgoing_r)] == [{"x": 1}]
    assert not peer.closed


def test_a_call_with_unencodable_params_raises_an_rpc_error(pipes):
    incoming_r, _, _, outgoing_w = pipes
    peer = Peer(incoming_r, outgoing_w)
    with pytest.raises(RpcError) as raised:
        call(peer, "handle", {"x": 2**64}, timeout=1)
    assert raised.value.code == INVALID_PARAMS


@pytest.mark.parametrize("value", UNENCODABLE, ids=["big-integer", "lone-surrogate", "deep-nesting"])
def test_a_result_json_cannot_carry_is_answered_with_an_error(pipes, value):
    incoming_r, incoming_w, outgoing_r, outgoing_w = pipes
    peer = Peer(incoming_r, outgoing_w)
    peer.on_request("tokenize", lambda params: {"ids": value})
    os.write(
        incoming_w, b'{"jsonrpc":"2.0","id":7,"method":"tokenize","params":{}}\n{"jsonrpc":"2.0","id":8,"method":"tokenize","params":{}}\n'
    )
    peer._read_available()
    while peer._frames:
        peer._dispatch(peer._frames.popleft())
    answers = written(outgoing_r)
    assert [a["id"] for a in answers] == [7, 8]
    assert all(a["error"]["code"] == INTERNAL_ERROR and "cannot be sent" in a["error"]["message"] for a in answers)

"""Property tests of the shim's JSON-RPC peer (rpc.Peer) against arbitrary
message shapes from the other side: it never crashes, answers every request
that carries an id (with a result or a well-formed error), and a malformed
answer to its own request is an RpcError, never another exception."""

import os

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peer_calls import call

from tsserve_shim.bridge.errors import RpcError
from tsserve_shim.bridge.rpc import Peer

json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8
)
methods = st.sampled_from(["echo", "boom", "note", "unknown"]) | json_values
ids = st.integers(100, 10**6) | st.text(max_size=6) | st.none() | st.booleans() | json_values

# A message: a JSON-RPC-like object with any subset of the envelope keys, each of any shape.
messages = (
    st.fixed_dictionaries(
        {},
        optional={
            "jsonrpc": st.sampled_from(["2.0", "2.0", "1.0"]) | json_values,
            "id": ids,
            "method": methods,
            "params": st.dictionaries(st.text(max_size=4), json_values, max_size=3) | json_values,
            "result": json_values,
            "error": st.fixed_dictionaries({}, optional={"code": json_values, "message": json_values, "data": json_values}) | json_values,
        },
    )
    | json_values
)
lines = st.lists(messages.map(orjson.dumps) | st.binary(max_size=40).filter(lambda b: b"\n" not in b), max_size=12)


def make_peer():
    incoming_r, incoming_w = os.pipe()
    outgoing_r, outgoing_w = os.pipe()
    noise = []
    peer = Peer(incoming_r, outgoing_w, on_noise=noise.append)
    peer.on_request("echo", lambda params: params)
    peer.on_request("boom", lambda params: 1 / 0)
    peer.on_notification("note", lambda params: params["missing"])  # a notification handler that raises
    return peer, incoming_w, outgoing_r, noise, (incoming_r, incoming_w, outgoing_r, outgoing_w)


def replies(fd):
    os.set_blocking(fd, False)
    data = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    return [orjson.loads(line) for line in data.split(b"\n") if line]


def is_request(m):
    return isinstance(m, dict) and m.get("jsonrpc") == "2.0" and "method" in m and "id" in m


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines)
def test_any_message_shapes_are_served_or_ignored_and_every_request_is_answered(frames):
    peer, incoming_w, outgoing_r, _noise, fds = make_peer()
    try:
        # The arbitrary frames, then the answer to our probe (request id 1).
        os.write(incoming_w, b"".join(f + b"\n" for f in frames) + orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": "probe"}) + b"\n")
        assert call(peer, "probe", {}, timeout=5) == "probe"
        sent = replies(outgoing_r)
        assert sent[0]["method"] == "probe"
        answers = sent[1:]
        for answer in answers:
            assert answer["jsonrpc"] == "2.0"
            assert ("result" in answer) != ("error" in answer)
            if "error" in answer:
                assert isinstance(answer["error"]["code"], int) and isinstance(answer["error"]["message"], str)
        requests = [m for m in map(_parse, frames) if is_request(m)]
        # One answer per request, in order, each echoing the request's id (whatever its shape).
        assert [a["id"] for a in answers] == [r["id"] for r in requests]
    finally:
        for fd in fds:
            os.close(fd)


def _parse(frame):
    try:
        return orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({"jsonrpc": st.just("2.0"), "id": st.just(1)}, optional={"result": json_values, "error": json_values}))
def test_a_malformed_answer_to_our_request_is_an_rpc_error_or_a_result(answer):
    peer, incoming_w, _outgoing_r, _noise, fds = make_peer()
    try:
        os.write(incoming_w, orjson.dumps(answer) + b"\n")
        try:
            result = call(peer, "probe", {}, timeout=5)
        except RpcError as error:
            assert "error" in answer
            assert isinstance(error.code, int) and isinstance(error.message, str)
        else:
            assert "error" not in answer and result == answer.get("result")
    finally:
        for fd in fds:
            os.close(fd)

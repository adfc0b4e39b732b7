"""The shim's RPC peer against a real Node child running a bundled handler, served as the bridge serves it."""

import os
import time

import pytest
from peer_calls import call
from protocol_check import RecordingPeer, check_result
from protocol_values import initialize_params

from tsserve_shim.bridge import protocol
from tsserve_shim.bridge.errors import PeerClosed, PeerTimeout, RpcError, ShimConfigError
from tsserve_shim.bridge.node_process import NodeProcess, find_node
from tsserve_shim.bridge.rpc import Peer

EMPTY = {"tokens": [], "token_ids": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}


def fake_generate(params):
    outcomes = []
    for request in params["requests"]:
        text = "+" * request["max_tokens"]
        outcomes.append(
            {
                "ok": True,
                "prompt": EMPTY,
                "prompt_tokens": 1,
                "compute_time": 0.0,
                "sequences": [{"text": text, "finish_reason": "length", "cumulative_logprob": 0.0, "logprobs": EMPTY}],
            }
        )
    return {"outcomes": outcomes}


@pytest.fixture
def child(echo_bundle):
    process = NodeProcess(find_node(), echo_bundle, cwd=os.path.dirname(echo_bundle))
    peer = Peer(process.stdout_fd, process.stdin_fd)
    recorder = RecordingPeer(peer)
    peer.on_request(protocol.GENERATE, fake_generate)
    yield process, peer, recorder
    process.stop(grace=0.5)


def initialize(peer, version=None):
    return call(peer, protocol.INITIALIZE, initialize_params("echo", "/tmp", 4, "/m", version), timeout=30)


def test_handshake_and_a_batch_with_one_bad_request(child):
    _, peer, recorder = child
    assert initialize(peer)["protocol_version"] == protocol.PROTOCOL_VERSION
    result = call(
        peer,
        protocol.HANDLE,
        {"batch_id": 1, "requests": [{"body": {"prompt": "a", "max_tokens": 2}}, {"body": {"prompt": 1}}]},
        timeout=30,
    )
    check_result(protocol.HANDLE, result)
    assert result["responses"][0] == {"ok": True, "body": {"texts": ["++"]}}
    assert result["responses"][1]["status"] == 400 and result["responses"][1]["field"] == "prompt"
    assert recorder.checked >= 3  # initialize, handle, and the generate answer all matched the schema


def test_protocol_version_mismatch_is_a_clear_error(child):
    _, peer, _ = child
    with pytest.raises(RpcError, match="protocol version mismatch"):
        initialize(peer, version=protocol.PROTOCOL_VERSION + 1)


def test_multi_step_handler_calls_back_into_the_shim_during_one_handle(child):
    _, peer, _ = child
    initialize(peer)
    result = call(peer, protocol.HANDLE, {"batch_id": 1, "requests": [{"body": {"prompt": "q", "max_tokens": 1, "steps": 3}}]}, timeout=30)
    assert result["responses"][0]["body"] == {"texts": ["+", "+", "+"]}


def test_child_exit_during_handle_raises_peer_closed(child):
    process, peer, _ = child
    initialize(peer)
    with pytest.raises(PeerClosed):
        call(peer, protocol.HANDLE, {"batch_id": 1, "requests": [{"body": {"prompt": "x", "fault": "exit"}}]}, timeout=30)
    process.process.wait(timeout=5)
    assert process.exit_description() == "exited with code 3"


def test_a_hung_handler_leaves_its_request_unanswered_and_stop_ends_it(child):
    process, peer, _ = child
    initialize(peer)
    start = time.monotonic()
    with pytest.raises(PeerTimeout):
        call(peer, protocol.HANDLE, {"batch_id": 1, "requests": [{"body": {"prompt": "x", "fault": "hang"}}]}, timeout=1)
    assert time.monotonic() - start < 3
    process.stop(grace=0.5)  # stdin closed, then SIGTERM, then SIGKILL
    assert not process.alive()


def test_both_sides_writing_a_mebibyte_at_once_do_not_deadlock(child):
    _, peer, _ = child
    initialize(peer)
    big = "x" * (1 << 20)

    def generate(params):
        return fake_generate({"requests": [dict(r, max_tokens=1 << 20) for r in params["requests"]]})

    peer.on_request(protocol.GENERATE, generate)
    result = call(peer, protocol.HANDLE, {"batch_id": 1, "requests": [{"body": {"prompt": big, "max_tokens": 1}}]}, timeout=60)
    assert len(result["responses"][0]["body"]["texts"][0]) == 1 << 20


def test_fifty_megabytes_on_stderr_do_not_block_the_channel(child):
    process, peer, _ = child
    initialize(peer)
    result = call(
        peer,
        protocol.HANDLE,
        {"batch_id": 1, "requests": [{"body": {"prompt": "x", "max_tokens": 1, "fault": "stderr-flood"}}]},
        timeout=120,
    )
    assert result["responses"][0]["ok"]
    assert process.stderr_tail().endswith("e" * 100)


def test_stdout_noise_from_the_handler_never_reaches_the_channel(child):
    _, peer, _ = child
    noise = []
    peer._on_noise = noise.append
    initialize(peer)
    result = call(peer, protocol.HANDLE, {"batch_id": 1, "requests": [{"body": {"prompt": "x", "fault": "stdout"}}]}, timeout=30)
    assert result["responses"][0]["ok"] and noise == []


def test_find_node_names_a_missing_binary(monkeypatch):
    with pytest.raises(ShimConfigError, match="not an executable"):
        find_node("/nonexistent/node")
    monkeypatch.setenv("TSSERVE_NODE", "/nonexistent/node2")
    with pytest.raises(ShimConfigError, match=r"\$TSSERVE_NODE"):
        find_node(None)


def test_find_node_refuses_an_old_node(tmp_path):
    fake = tmp_path / "node"
    fake.write_text("#!/bin/sh\necho v18.19.0\n")
    fake.chmod(0o755)
    with pytest.raises(ShimConfigError, match=r"v18\.19\.0; tsserve needs Node 20"):
        find_node(str(fake))


def test_ping_returns_its_payload_unchanged(child):
    _, peer, _ = child
    for payload in ["", 'héllo ✓ 😀\n"quoted"', "x" * 100_000]:
        assert call(peer, protocol.PING, {"payload": payload}, timeout=10) == {"payload": payload}

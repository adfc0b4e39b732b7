"""The bridge thread (channel.Bridge) with the echo bundle and a fake model: it survives a Node binary
that cannot be spawned (each request meanwhile a quick answer naming the cause, then service again
once node is back), and stops the child with a shutdown request, which Node answers by exiting 0."""

import dataclasses
import os
import threading
import time

import pytest
from protocol_values import initialize_params
from test_rpc import fake_generate

from tsserve_shim.bridge import protocol
from tsserve_shim.bridge.channel import Bridge, ChildSpec, closed, unavailable
from tsserve_shim.bridge.node_process import find_node


class FakeModel:
    def submit(self, requests, done, on_delta, deadlines, tag):
        done(fake_generate({"requests": [dataclasses.asdict(request) for request in requests]})["outcomes"])  # typed by the bridge

    def cancel(self, tag):
        pass

    def tokenize(self, texts, add_special_tokens):
        return [[1] for _ in texts]

    def detokenize(self, ids, skip_special_tokens):
        return ["" for _ in ids]

    def pretokenize(self, requests):
        return list(requests)


@pytest.fixture
def bridge(echo_bundle):
    handshake = initialize_params("echo", "/tmp", 1, "/m")
    spec = ChildSpec(find_node(), echo_bundle, os.path.dirname(echo_bundle), handshake)
    bridge = Bridge(spec, FakeModel(), deadline_for=lambda batch_id: None, on_chunk=lambda params: None).start()
    yield bridge
    bridge.stop()


def handle(bridge: Bridge, prompt: str = "a", timeout: float = 30) -> dict:
    answered = threading.Event()
    box: list = []
    bridge.request(
        protocol.HANDLE,
        {"batch_id": 1, "requests": [{"body": {"prompt": prompt, "max_tokens": 2}}]},
        lambda message: (box.append(message), answered.set()),
    )
    assert answered.wait(timeout), "no answer"
    return box[0]


def test_a_node_binary_that_cannot_be_spawned_is_named_in_quick_answers_until_it_can(bridge):
    good_node = bridge.supervisor.spec.node
    assert "result" in handle(bridge)
    bridge.supervisor.spec = dataclasses.replace(bridge.supervisor.spec, node="/nonexistent/node")
    old_pid = bridge.child_pid
    bridge.kill_child()
    deadline = time.monotonic() + 10
    while bridge.start_failure is None and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    answer = handle(bridge)
    assert time.monotonic() - started < 0.5  # answered at once, not after the back-off
    assert closed(answer) and unavailable(answer)
    assert "FileNotFoundError" in answer["error"]["message"] and "/nonexistent/node" in answer["error"]["message"]
    bridge.supervisor.spec = dataclasses.replace(bridge.supervisor.spec, node=good_node)
    deadline = time.monotonic() + 30
    while bridge.start_failure is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    answer = handle(bridge)
    assert answer["result"]["responses"][0] == {"ok": True, "body": {"texts": ["++"]}}
    assert bridge.child_pid != old_pid and bridge.restarts == 1


def test_stop_sends_shutdown_and_node_exits_0(bridge):
    assert "result" in handle(bridge)
    child = bridge.child
    bridge.stop()
    assert child.process.wait(timeout=5) == 0

"""The peer polls the pipe briefly before it blocks (rpc.Peer spin), and stops
polling for a while after a poll found nothing."""
import os
import threading
import time

import orjson
import pytest

from tsserve_shim.bridge import rpc
from tsserve_shim.bridge.errors import PeerClosed
from tsserve_shim.bridge.rpc import SPIN_BACKOFF_WAITS, Peer, spin_seconds_from_env


def answer_later(fd, request_id, delay):
    def write():
        time.sleep(delay)
        os.write(fd, orjson.dumps({"jsonrpc": "2.0", "id": request_id, "result": request_id}) + b"\n")

    thread = threading.Thread(target=write)
    thread.start()
    return thread


@pytest.fixture
def pipes():
    incoming_r, incoming_w = os.pipe()
    outgoing_r, outgoing_w = os.pipe()
    yield incoming_r, incoming_w, outgoing_w
    for fd in (incoming_r, incoming_w, outgoing_r, outgoing_w):
        try:
            os.close(fd)
        except OSError:
            pass


class CountingPeer(Peer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.polls = []  # True for a poll that got the answer, False for one that gave up

    def _spin_read(self):
        got = super()._spin_read()
        self.polls.append(got)
        return got


def ask(peer, incoming_w, request_id, delay):
    """One request of the peer, answered by another thread after `delay` seconds."""
    thread = answer_later(incoming_w, request_id, delay)
    assert peer.request("probe", {}) == request_id
    thread.join()


def test_an_answer_inside_the_spin_window_is_read_by_polling_and_the_fd_blocks_again(pipes):
    incoming_r, incoming_w, outgoing_w = pipes
    peer = CountingPeer(incoming_r, outgoing_w, spin_seconds=2.0)
    ask(peer, incoming_w, 1, 0.01)
    assert peer.polls == [True]
    assert os.get_blocking(incoming_r)


def test_a_poll_that_finds_nothing_falls_back_to_a_blocking_read_then_backs_off(pipes):
    incoming_r, incoming_w, outgoing_w = pipes
    peer = CountingPeer(incoming_r, outgoing_w, spin_seconds=0.001)
    ask(peer, incoming_w, 1, 0.05)  # answered by the blocking read after the poll gave up
    assert peer.polls == [False]
    for request_id in range(2, 2 + SPIN_BACKOFF_WAITS):
        ask(peer, incoming_w, request_id, 0.002)
    assert peer.polls == [False], "no polling during the back-off"
    ask(peer, incoming_w, 2 + SPIN_BACKOFF_WAITS, 0.0)
    assert len(peer.polls) == 2, "polling is tried again after the back-off"


def test_end_of_stream_while_polling_is_peer_closed(pipes):
    incoming_r, incoming_w, outgoing_w = pipes
    peer = Peer(incoming_r, outgoing_w, spin_seconds=2.0)
    os.close(incoming_w)
    with pytest.raises(PeerClosed, match="exited while probe was pending"):
        peer.request("probe", {})


def test_spin_zero_never_polls(pipes):
    incoming_r, incoming_w, outgoing_w = pipes
    peer = CountingPeer(incoming_r, outgoing_w, spin_seconds=0)
    ask(peer, incoming_w, 1, 0.0)
    assert peer.polls == []


@pytest.mark.parametrize(
    "value, seconds",
    [(None, rpc.DEFAULT_SPIN_US / 1e6), ("", rpc.DEFAULT_SPIN_US / 1e6), ("0", 0.0), ("150", 150e-6), ("-5", 0.0), ("fast", rpc.DEFAULT_SPIN_US / 1e6)],
)
def test_spin_time_comes_from_the_environment(value, seconds):
    environ = {} if value is None else {"TSSERVE_RPC_SPIN_US": value}
    assert spin_seconds_from_env(environ) == pytest.approx(seconds)

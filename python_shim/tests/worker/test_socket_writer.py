"""One writer per socket: frames written from two threads at once arrive whole, including the first
answer of TorchServe's send_responses thread, which looks up `sendall` before it blocks for that answer."""

import socket
import struct
import threading

from tsserve_shim.worker.frames import frame_problem
from tsserve_shim.worker.socket_writer import one_writer

FRAME = 1 << 20
ROUNDS = 4
SMALL_BUFFER = 4096  # many short sends per frame: each blocks, so the other writer's thread gets its turn
C_SENDALL = socket.SocketType.sendall  # the C socket's own, without the shim's lock


def _small_buffers(pair) -> None:
    for sock in pair:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)


def _frames_received(pair, writers) -> list:
    """Each writer (a function of the writing socket and one byte) runs in its own thread; what the other end reads, cut in frames."""
    writer, reader = pair
    _small_buffers(pair)
    received = bytearray()

    def read() -> None:
        while len(received) < len(writers) * ROUNDS * FRAME:
            received.extend(reader.recv(SMALL_BUFFER))

    threads = [threading.Thread(target=read)] + [threading.Thread(target=w, args=(writer, b)) for w, b in zip(writers, (b"a", b"b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return [bytes(received[i : i + FRAME]) for i in range(0, len(received), FRAME)]


def _whole(frame: bytes) -> bool:
    return frame in (b"a" * FRAME, b"b" * FRAME)


def _sendall_rounds(sock, byte: bytes) -> None:
    for _ in range(ROUNDS):
        sock.sendall(byte * FRAME)


def _c_sendall_rounds(sock, byte: bytes) -> None:
    for _ in range(ROUNDS):
        C_SENDALL(sock, byte * FRAME)


def test_two_writers_without_the_lock_interleave_their_frames():
    """The race itself, as TorchServe's send_responses thread and the shim's stream chunks had it."""
    frames = _frames_received(socket.socketpair(), [_c_sendall_rounds, _c_sendall_rounds])
    assert not all(_whole(frame) for frame in frames), "the premise: large frames from two threads interleave on a plain socket"


def test_every_frame_arrives_whole():
    pair = socket.socketpair()
    one_writer(pair[0])
    frames = _frames_received(pair, [_sendall_rounds, _sendall_rounds])
    assert len(frames) == 2 * ROUNDS
    assert all(_whole(frame) for frame in frames)


def test_a_writer_that_looked_up_sendall_before_the_socket_was_marked_still_takes_the_lock():
    """send_responses evaluates `cl_socket.sendall` before it blocks for its first answer; the shim marks the
    socket when the first request arrives. That first answer must not interleave with a stream chunk."""
    pair = socket.socketpair()
    marked = threading.Event()

    def send_responses(sock, byte: bytes) -> None:
        send = sock.sendall  # looked up before the wait, as `sock.sendall(queue.get())` does
        marked.wait(10)
        for _ in range(ROUNDS):
            send(byte * FRAME)

    def chunks(sock, byte: bytes) -> None:
        one_writer(sock)
        marked.set()
        _sendall_rounds(sock, byte)

    frames = _frames_received(pair, [send_responses, chunks])
    assert len(frames) == 2 * ROUNDS and all(_whole(frame) for frame in frames)


def test_one_writer_is_idempotent_and_leaves_a_missing_socket_alone():
    left, right = socket.socketpair()
    one_writer(left)
    one_writer(left)
    assert type(left) is socket.socket
    left.sendall(b"ping")
    assert right.recv(4) == b"ping"
    one_writer(None)  # a context without a socket (a test's, a KServe envelope's) is left alone


def test_a_malformed_frame_on_the_worker_socket_is_logged_with_what_is_wrong_and_still_written(caplog):
    left, right = socket.socketpair()
    whole = struct.pack("!ii", 200, 2) + b"ok" + struct.pack("!i", -1)
    left.sendall(whole[:-2])  # not the worker's socket (yet): not a TorchServe frame, not checked
    assert not caplog.records
    one_writer(left)
    left.sendall(whole)
    assert frame_problem(whole) is None and not caplog.records
    left.sendall(whole[:-2])
    received = b""
    while len(received) < 3 * len(whole) - 4:
        received += right.recv(64)
    assert received == whole[:-2] + whole + whole[:-2]
    [record] = caplog.records
    assert "malformed reply frame (12 bytes" in record.getMessage() and "runs past the frame's end" in record.getMessage()

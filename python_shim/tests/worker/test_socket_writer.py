"""One writer per worker socket: frames written from two threads at once arrive whole."""
import socket
import threading

from tsserve_shim.worker.socket_writer import OneWriterSocket, one_writer

FRAME = 1 << 20
ROUNDS = 4
SMALL_BUFFER = 4096  # many short sends per frame: each blocks, so the other writer's thread gets its turn


def _frames_received(sock_pair) -> list:
    """Two threads each write ROUNDS frames of one repeated byte to the first socket; what the second reads, cut in frames."""
    writer, reader = sock_pair
    for sock in sock_pair:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    received = bytearray()

    def read() -> None:
        while len(received) < 2 * ROUNDS * FRAME:
            received.extend(reader.recv(SMALL_BUFFER))

    def write(byte: bytes) -> None:
        for _ in range(ROUNDS):
            writer.sendall(byte * FRAME)

    threads = [threading.Thread(target=read)] + [threading.Thread(target=write, args=(b,)) for b in (b"a", b"b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return [bytes(received[i:i + FRAME]) for i in range(0, len(received), FRAME)]


def _whole(frame: bytes) -> bool:
    return frame in (b"a" * FRAME, b"b" * FRAME)


def test_two_writers_on_a_plain_socket_interleave_their_frames():
    """The race itself, as TorchServe's send_responses thread and the shim's stream chunks had it."""
    pair = socket.socketpair()
    frames = _frames_received(pair)
    assert not all(_whole(frame) for frame in frames), "the premise: large frames from two threads interleave on a plain socket"


def test_with_one_writer_every_frame_arrives_whole():
    pair = socket.socketpair()
    one_writer(pair[0])
    frames = _frames_received(pair)
    assert len(frames) == 2 * ROUNDS
    assert all(_whole(frame) for frame in frames)


def test_one_writer_keeps_the_socket_object_and_is_idempotent():
    left, right = socket.socketpair()
    one_writer(left)
    one_writer(left)
    assert type(left) is OneWriterSocket
    left.sendall(b"ping")
    assert right.recv(4) == b"ping"
    one_writer(None)  # a context without a socket (a test's, a KServe envelope's) is left alone

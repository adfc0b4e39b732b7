"""No process a worker started outlives it: vLLM's engine core and model workers, and the Node child.

vLLM runs its engine core and its model workers as processes of their own, and the bridge runs the
handler in a Node child. TorchServe ends a worker with SIGKILL (unregister, scale down, a stop) and a
worker can die any other way; vLLM's processes are then orphans that ignore SIGTERM for a long time and
hold the model's memory, and a Node child busy in a handler reads no end of its stdin. The worker starts
one small reaper process and hands it every process that appears below it while the engine loads and
the bridge starts; the reaper holds the read end of a pipe that only the worker writes to, so it sees
the worker end however it ends (end of file), and then ends those processes: SIGTERM, and SIGKILL for
what is left after a short grace.

Run as a script (the standard library and psutil only):

    python reaper.py    stdin: lines "PID CREATE_TIME"; at its end, reaps them
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import IO

import psutil

log = logging.getLogger(__name__)

GRACE_S = 2.0


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.NoSuchProcess:  # one exited while listed
        return []


def _same(pid: int, created: float) -> bool:
    """Whether ``pid`` is still the process that was handed over (not gone, not a reused pid)."""
    try:
        return psutil.Process(pid).create_time() == created
    except psutil.NoSuchProcess:
        return False


class Reaper:
    """The worker's side: the reaper process and the pipe it watches."""

    def __init__(self, process: subprocess.Popen) -> None:
        self._process = process
        self._pipe = process.stdin  # unbuffered: nothing half-written is left for a fork to repeat
        # A process forked from the worker (vLLM's fork start method, were it chosen) would hold the pipe
        # open after the worker's death: the fork closes its copy at once.
        os.register_at_fork(after_in_child=self._pipe.close)

    @classmethod
    def start(cls) -> Reaper:
        # A session of its own: a signal to the worker's process group does not end it before it reaps.
        process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, bufsize=0, start_new_session=True
        )
        return cls(process)

    def watch(self, processes: Iterable[psutil.Process]) -> None:
        """Hands the reaper ``processes`` (with their start times: a reused pid is left alone)."""
        lines = []
        for process in processes:
            try:
                if process.pid != self._process.pid:
                    lines.append(f"{process.pid} {process.create_time()!r}\n")
            except psutil.NoSuchProcess:
                pass
        try:
            self._pipe.write("".join(lines).encode())
        except (BrokenPipeError, ValueError):  # the reaper is gone, or closed
            log.warning("tsserve: the reaper is gone; processes %s may outlive this worker", [line.split()[0] for line in lines])

    @contextlib.contextmanager
    def watching_new_children(self, every_s: float = 0.5) -> Iterator[None]:
        """Hands over each process that appears below this one while the block runs, and at its end."""
        me = psutil.Process()
        before = {p.pid for p in me.children(recursive=True)}
        stop = threading.Event()

        def hand_over() -> None:
            self.watch(p for p in _children(me) if p.pid not in before)

        def poll() -> None:
            while not stop.wait(every_s):
                hand_over()

        poller = threading.Thread(target=poll, name="tsserve-reaper", daemon=True)
        poller.start()
        try:
            yield
        finally:
            stop.set()
            poller.join()
            hand_over()

    def close(self, timeout: float = GRACE_S + 3.0) -> None:
        """Lets the reaper end what it was handed now (as the worker's death would) and waits for it."""
        self._pipe.close()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()


def _with_descendants(watched: dict[int, float]) -> dict[int, float]:
    """The watched processes and, while they still run as themselves, every process they started since they
    were handed over (a child started after the watch ended: it would outlive its killed parent)."""
    found = dict(watched)
    for pid, created in watched.items():
        try:
            process = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        if process.create_time() != created:
            continue
        for child in _children(process):
            try:
                found.setdefault(child.pid, child.create_time())
            except psutil.NoSuchProcess:
                pass
    return found


def reap(watched: dict[int, float], grace_s: float = GRACE_S) -> None:
    """SIGTERM to each watched process still running as itself and to its descendants, then SIGKILL after ``grace_s``."""
    watched = _with_descendants(watched)
    alive = lambda: [pid for pid, created in watched.items() if _same(pid, created)]  # noqa: E731
    for pid in alive():
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in alive():
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _read_watched(stream: IO[bytes]) -> dict[int, float]:
    watched: dict[int, float] = {}
    for line in stream:  # ends when the worker closes the pipe or dies
        pid, created = line.split()
        watched[int(pid)] = float(created)
    return watched


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # ended by the pipe's end only
    reap(_read_watched(sys.stdin.buffer))


if __name__ == "__main__":
    main()

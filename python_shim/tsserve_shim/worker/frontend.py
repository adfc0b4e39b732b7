"""The TorchServe frontend that started this worker, found among its ancestors: its process, the
config.properties it was started with (`-f FILE`, from torchserve --ts-config), read the way it reads it."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

FRONTEND_MAIN_CLASS = "org.pytorch.serve.ModelServer"
# The frontend is the worker's parent, or its grandparent under torchrun.
ANCESTORS_SEARCHED = 3
_PROPERTY = re.compile(r"^([^=:\s]+)\s*[=:\s]\s*(.*)$")


def parse_properties(text: str) -> dict:
    """The Java-properties subset TorchServe's config.properties uses: `key=value` or `key: value`, comments, `\\` continuations."""
    props: dict = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        index += 1
        if not line or line[0] in "#!":
            continue
        while line.endswith("\\") and index < len(lines):
            line = line[:-1] + lines[index].strip()
            index += 1
        match = _PROPERTY.match(line)
        if match:
            props[match.group(1)] = match.group(2)
    return props


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _parent_pid(pid: int, read: Callable[[str], str | None]) -> int | None:
    stat = read(f"/proc/{pid}/stat")
    if not stat:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[1]) if len(fields) > 1 else None


def frontend_pid(pid: int | None = None, read: Callable[[str], str | None] = read_text) -> int | None:
    """The frontend process among the ancestors of ``pid`` (default: this worker's parent first)."""
    pid = os.getppid() if pid is None else pid
    for _ in range(ANCESTORS_SEARCHED):
        if not pid or pid <= 1:
            return None
        if FRONTEND_MAIN_CLASS in (read(f"/proc/{pid}/cmdline") or "").split("\0"):
            return pid
        pid = _parent_pid(pid, read)
    return None


def frontend_config_file(pid: int | None = None, read: Callable[[str], str | None] = read_text) -> str | None:
    """The config.properties the frontend process (an ancestor of ``pid``) was started with, if any."""
    frontend = frontend_pid(pid, read)
    if frontend is None:
        return None
    cmdline = (read(f"/proc/{frontend}/cmdline") or "").split("\0")
    if "-f" not in cmdline[:-1]:
        return None
    path = cmdline[cmdline.index("-f") + 1]
    return path if os.path.isabs(path) else os.path.join(os.path.realpath(f"/proc/{frontend}/cwd"), path)

"""Starting one Node child: spawn it on the bundle, let the bridge register its handlers on the child's
channel, and handshake it (initialize), serving the child's own calls meanwhile (a warm-up)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from . import protocol
from .answers import result_of
from .errors import PeerClosed, PeerTimeout, RpcError, ShimConfigError
from .mailbox import Mailbox
from .node_process import NodeProcess
from .rpc import Peer

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_S = 60
# Registers the bridge's handlers on a new child's channel: (its peer, its pid).
Attach = Callable[[Peer, int], None]


@dataclass(frozen=True)
class ChildSpec:
    node: str
    bundle: str
    cwd: str
    handshake: dict  # InitializeParams


@dataclass(frozen=True)
class RunningChild:
    """A handshaken child, its channel, and the bundle file it was started from."""

    process: NodeProcess
    peer: Peer
    bundle_stamp: tuple | None

    @property
    def pid(self) -> int:
        return self.process.pid


def bundle_stamp(bundle: str) -> tuple | None:
    """What tells one bundle file from the next build's (None: there is none now)."""
    try:
        stat = os.stat(bundle)
    except OSError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def start_child(spec: ChildSpec, mailbox: Mailbox, attach: Attach) -> RunningChild:
    """A child started and handshaken; ShimConfigError naming why (with its stderr) when its handshake fails."""
    stamp = bundle_stamp(spec.bundle)
    process = NodeProcess(spec.node, spec.bundle, cwd=spec.cwd)
    peer = Peer(process.stdout_fd, process.stdin_fd, on_noise=lambda line: log.warning("tsserve channel: %s", line))
    attach(peer, process.pid)
    try:
        handshake(peer, spec.handshake, mailbox)
    except (PeerClosed, PeerTimeout, RpcError) as error:
        raise _failed_to_start(process, error) from None
    log.info("tsserve: handler bundle started (node pid %d, %s)", process.pid, spec.node)
    return RunningChild(process, peer, stamp)


def handshake(peer: Peer, params: dict, mailbox: Mailbox) -> None:
    """Send initialize and serve the child until it answers. Its generate/tokenize calls meanwhile are answered,
    their engine callbacks run by this loop, not by the bridge loop (which may be this thread, waiting here)."""
    with mailbox.handshaking(peer):
        answer = peer.request_and_serve(protocol.INITIALIZE, params, mailbox.wake_fd, mailbox.run_handshake_posted, HANDSHAKE_TIMEOUT_S)
    result_of(answer, protocol.INITIALIZE)


def _failed_to_start(process: NodeProcess, error: Exception) -> ShimConfigError:
    reason = error.message if isinstance(error, RpcError) else str(error)
    tail = process.stderr_tail()
    process.stop()
    return ShimConfigError(
        f"the handler bundle failed to start: {reason} ({process.exit_description()})\n"
        f"--- node stderr ---\n{tail}\n--- end of node stderr ---"
    )


def describe_failure(error: BaseException) -> str:
    """Why a child could not be started, for the log and for the requests answered meanwhile."""
    return str(error) if isinstance(error, ShimConfigError) else f"{type(error).__name__}: {error}"

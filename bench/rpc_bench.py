"""Round trips between the shim's RPC peer and a Node child running a bundled
handler, through the real framing code on both sides (`ping`), served as the
bridge serves them (request_async, then the bridge loop's serve_once turns).

Prints one JSON object: {"100B": {"p50_us", "p99_us", "per_s"}, ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from tsserve_shim.bridge import protocol
from tsserve_shim.bridge.node_process import NodeProcess, find_node
from tsserve_shim.bridge.rpc import Peer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python_shim", "tests"))
from peer_calls import call
from protocol_values import initialize_params

SIZES = {"100B": 100, "1KB": 1_000, "100KB": 100_000, "1MB": 1_000_000}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of this process and of the Node child (Linux /proc; 0 elsewhere)."""
    own = os.times()
    total = own.user + own.system
    return total + task_cpu_seconds(pid)


def task_cpu_seconds(pid: int) -> float:
    """CPU time of every thread of a process, in ns precision (/proc/PID/task/*/schedstat; 0 elsewhere)."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as stat:
                    total += int(stat.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        return 0.0
    return total / 1e9


def measure(peer: Peer, size: int, seconds: float, max_rounds: int, child_pid: int = 0) -> dict:
    payload = "x" * size
    for _ in range(20):
        echoed = call(peer, protocol.PING, {"payload": payload})
    if echoed != {"payload": payload}:
        raise SystemExit(f"ping of {size} bytes came back changed")
    samples: list[float] = []
    cpu_started = cpu_seconds(child_pid)
    started = time.perf_counter()
    while len(samples) < max_rounds and time.perf_counter() - started < seconds:
        t0 = time.perf_counter()
        call(peer, protocol.PING, {"payload": payload})
        samples.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(child_pid) - cpu_started
    return {
        "p50_us": round(statistics.median(samples) * 1e6, 1),
        "p99_us": round(percentile(samples, 0.99) * 1e6, 1),
        "per_s": round(len(samples) / elapsed, 1),
        "rounds": len(samples),
        # CPU time of both processes per round trip: steadier than latency on a busy machine.
        "cpu_us": round(cpu / len(samples) * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--max-rounds", type=int, default=20_000)
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated subset of " + ",".join(SIZES))
    args = parser.parse_args()
    sizes = {name: SIZES[name] for name in args.sizes.split(",")}
    child = NodeProcess(find_node(), args.bundle, cwd=os.path.dirname(args.bundle))
    peer = Peer(child.stdout_fd, child.stdin_fd)
    try:
        call(
            peer,
            protocol.INITIALIZE,
            initialize_params("bench", os.path.dirname(args.bundle), 1, "/unused"),
            timeout=30,
        )
        results = {name: measure(peer, size, args.seconds, args.max_rounds, child.pid) for name, size in sizes.items()}
    finally:
        child.stop(grace=1)
    json.dump(results, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

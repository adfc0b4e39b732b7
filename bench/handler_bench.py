"""The bridge's cost per request without TorchServe and HTTP around it: the
shim's TsserveHandler (Node child running handlers/llama-2-7b-chat.ts) and
bench/python_handler.py, both `handle`-d in this one process on the same
tiny model and request, interleaved request by request (A B A B ...).

What differs between the two is exactly what tsserve adds: the JSON-RPC
round trips (handle, and the handler's generate call back into the shim)
and the TypeScript handler's own work. TorchServe's part is the same for both
and is left out, and so is most of the machine's noise.

    .venv/bin/python bench/handler_bench.py --bundle-dir DIR --config configs/tiny-llama-2-chat.yaml

DIR holds handler.mjs (`tsserve bundle --handler handlers/llama-2-7b-chat.ts --out DIR`).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rpc_bench import task_cpu_seconds

HERE = os.path.dirname(os.path.abspath(__file__))


class FakeContext:
    """What TorchServe hands a handler: the parts these two handlers use."""

    def __init__(self, model_dir: str, model_config: dict, name: str) -> None:
        self.system_properties = {"model_dir": model_dir, "gpu_id": None, "batch_size": 1}
        self.model_yaml_config = model_config
        self.manifest = {"model": {"modelName": name}}
        self.request_ids = {0: "bench"}
        self.statuses: dict = {}

    def get_request_id(self, index=0):
        return self.request_ids.get(index)

    def set_response_content_type(self, index, value) -> None:
        pass

    def set_response_status(self, code, phrase, index=0) -> None:
        self.statuses[index] = code


def load_python_handler():
    spec = importlib.util.spec_from_file_location("python_handler", os.path.join(HERE, "python_handler.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PythonLlama2ChatHandler()


def child_cpu_seconds(handler) -> float:
    """CPU time of the handler's Node child so far (Linux /proc; 0 without one)."""
    bridge = getattr(handler, "bridge", None)
    pid = bridge.child_pid if bridge is not None else None
    return task_cpu_seconds(pid) if pid is not None else 0.0


def percentile(samples, q):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle-dir", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=50, help="requests per handler before measuring (lets V8 finish compiling)")
    args = parser.parse_args()

    from tsserve_shim.handler import TsserveHandler

    with open(args.config) as f:
        config = yaml.safe_load(f)
    # One request at a time through `handle`, the way TorchServe's synchronous worker calls it.
    config["asyncCommunication"] = False
    section = config["handler"]
    section["model_path"] = os.path.join(os.path.dirname(os.path.abspath(args.config)), section["model_path"])
    model_dir = os.path.abspath(args.bundle_dir)
    body = json.dumps({"prompt": "Alan Turing was a ", "max_tokens": args.max_tokens, "temperature": 0, "top_k": 1, "seed": 0}).encode()

    handlers = {"tsserve": TsserveHandler(), "python": load_python_handler()}
    contexts = {name: FakeContext(model_dir, config, f"bench-{name}") for name in handlers}
    for name, handler in handlers.items():
        handler.initialize(contexts[name])
    times = {name: [] for name in handlers}
    non_compute = {name: [] for name in handlers}
    cpu = {name: 0.0 for name in handlers}
    node_cpu = 0.0
    try:
        for name, handler in handlers.items():  # warm up both
            for _ in range(args.warmup):
                handler.handle([{"body": body}], contexts[name])
        texts = {
            name: json.loads(handler.handle([{"body": body}], contexts[name])[0])["choices"][0]["text"]
            for name, handler in handlers.items()
        }
        started = time.perf_counter()
        for i in range(args.requests):
            if time.perf_counter() - started > args.seconds:
                break
            order = ("tsserve", "python") if i % 2 == 0 else ("python", "tsserve")
            for name in order:
                n0 = child_cpu_seconds(handlers[name])
                c0 = time.process_time() + n0
                t0 = time.perf_counter()
                answer = handlers[name].handle([{"body": body}], contexts[name])[0]
                elapsed = time.perf_counter() - t0
                n1 = child_cpu_seconds(handlers[name])
                cpu[name] += time.process_time() + n1 - c0
                node_cpu += n1 - n0
                times[name].append(elapsed * 1e3)
                non_compute[name].append(elapsed * 1e3 - json.loads(answer)["raw_compute_time"] * 1e3)
    finally:
        handlers["tsserve"].shutdown()
    result = {
        name: {
            "p50_ms": round(statistics.median(times[name]), 3),
            "p99_ms": round(percentile(times[name], 0.99), 3),
            "non_compute_p50_ms": round(statistics.median(non_compute[name]), 3),
            # CPU of every process involved (this one, and the Node child for tsserve), per request.
            "cpu_ms_per_request": round(cpu[name] / max(1, len(times[name])) * 1e3, 3),
            "requests": len(times[name]),
        }
        for name in handlers
    }
    paired = [a - b for a, b in zip(non_compute["tsserve"], non_compute["python"])]
    result["overhead_p50_ms"] = round(result["tsserve"]["p50_ms"] - result["python"]["p50_ms"], 3)
    result["overhead_non_compute_p50_ms"] = round(statistics.median(paired), 3)
    result["tsserve"]["node_cpu_ms_per_request"] = round(node_cpu / max(1, len(times["tsserve"])) * 1e3, 3)
    result["cpu_overhead_ms_per_request"] = round(result["tsserve"]["cpu_ms_per_request"] - result["python"]["cpu_ms_per_request"], 3)
    result["outputs_match"] = texts["tsserve"] == texts["python"]
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

"""Long prompts beside streams, transformers engine, SmolLM2-135M-Instruct on the CPU, in one process:

- ``full_context``: 4 streams decode; a prompt of the model's whole context (less its 8 new tokens)
  arrives (``--prompt-tokens``: a shorter one). Figures: the streams' longest gap between two tokens while it is prefilled and answered, and
  the long prompt's time to its answer.
- ``rows_64``: 4 streams decode; one request of 64 rows (64 prompts of ~35 tokens) arrives. Figure: the
  streams' longest gap until it is answered.
- ``deadline``: 4 streams decode; a full-context prompt with a 1 s deadline arrives. Figure: seconds from
  its deadline until its rows have left the engine (running rows back to the 4 streams).

Each runs per ``--chunks`` value (handler.prefill_chunk_tokens; 0: the whole prompt in one forward).

    .venv/bin/python bench/prefill_bench.py [--model DIR] [--threads 2] [--chunks 512,0] [--prompt-tokens N]
        [--out FILE.json] [--markdown FILE.md]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import platform
import sys
import threading
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python_shim"))
sys.path.insert(0, os.path.join(ROOT, "python_shim", "tests"))

from protocol_values import make_request  # noqa: E402

from tsserve_shim.engine.common.deadline import Deadline  # noqa: E402
from tsserve_shim.engine.transformers.engine import Engine  # noqa: E402
from tsserve_shim.model.handler_config import HandlerConfig  # noqa: E402

STREAMS = 4
LONG_NEW_TOKENS = 8
WHOLE = 10**9  # a chunk no prompt reaches: the whole prompt in one forward
PROMPT_TOKENS = [0]  # --prompt-tokens: the long prompt's length (0: the model's whole context less its answer)


class Streams:
    """STREAMS streaming calls that decode until stopped (one that ends is sent again); when each token came."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.times: list[list[float]] = []  # per call sent: when its tokens came
        self.stopping = False
        self.left = STREAMS
        self.ended = threading.Event()
        for i in range(STREAMS):
            self._send(i)

    def _send(self, i: int) -> None:
        times: list[float] = []
        self.times.append(times)
        request = make_request(f"Story {i}: once upon a time", max_tokens=self.engine.context_length - 32, stream=True)
        self.engine.submit([request], lambda _: self._done(i), on_delta=lambda *_: times.append(time.perf_counter()), tag="streams")

    def _done(self, i: int) -> None:
        if not self.stopping:
            self._send(i)
            return
        self.left -= 1
        if not self.left:
            self.ended.set()

    def wait_started(self) -> None:
        while sum(len(t) for t in self.times) < 3 * STREAMS:
            time.sleep(0.01)

    def longest_gap(self, start: float, end: float) -> float:
        gaps = [b - a for t in self.times for a, b in itertools.pairwise(t) if b > start and a < end]
        return max(gaps, default=float("nan"))

    def stop(self) -> None:
        self.stopping = True
        self.engine.cancel("streams")
        self.ended.wait(600)


def prompt_of(engine: Engine, tokens: int) -> list[int]:
    words = " ".join(f"river{i % 97} mountain lantern harvest" for i in range(tokens))
    return engine.tokenizer(words, add_special_tokens=False)["input_ids"][:tokens]


def answer(engine: Engine, requests: list[dict], deadline=None) -> tuple[float, list[dict]]:
    done = threading.Event()
    got: list = []
    started = time.perf_counter()
    engine.submit(requests, lambda outcomes: (got.extend(outcomes), done.set()), deadlines=deadline)
    done.wait(3600)
    return time.perf_counter() - started, got


def full_context(engine: Engine) -> dict:
    streams = Streams(engine)
    streams.wait_started()
    ids = prompt_of(engine, PROMPT_TOKENS[0] or engine.context_length - LONG_NEW_TOKENS)
    start = time.perf_counter()
    seconds, [outcome] = answer(engine, [make_request("", prompt_token_ids=ids, max_tokens=LONG_NEW_TOKENS)])
    gap = streams.longest_gap(start, time.perf_counter())
    streams.stop()
    return {"prompt_tokens": len(ids), "long_prompt_s": round(seconds, 2), "ok": outcome["ok"], "streams_longest_gap_s": round(gap, 3)}


def rows_64(engine: Engine) -> dict:
    streams = Streams(engine)
    streams.wait_started()
    prompts = [" ".join(f"question {i} word{j}" for j in range(8)) for i in range(64)]
    start = time.perf_counter()
    seconds, outcomes = answer(engine, [make_request(p, max_tokens=4) for p in prompts])
    gap = streams.longest_gap(start, time.perf_counter())
    streams.stop()
    return {"rows": 64, "request_s": round(seconds, 2), "ok": all(o["ok"] for o in outcomes), "streams_longest_gap_s": round(gap, 3)}


def deadline(engine: Engine) -> dict:
    streams = Streams(engine)
    streams.wait_started()
    ids = prompt_of(engine, PROMPT_TOKENS[0] or engine.context_length - LONG_NEW_TOKENS)
    limit = Deadline.after(1.0, 1.0, "handler.handle_timeout_s")
    _, [outcome] = answer(engine, [make_request("", prompt_token_ids=ids, max_tokens=LONG_NEW_TOKENS)], limit)
    while engine.core.running_rows > STREAMS:
        time.sleep(0.005)
    left_after = time.monotonic() - limit.at
    streams.stop()
    return {"status": outcome.get("status", 200), "left_engine_after_deadline_s": round(left_after, 3)}


def run(engine: Engine, chunk: int) -> dict:
    engine = copy.copy(engine)
    engine.use_prefix_cache(0)  # every prompt computed, none found
    engine.scheduler.prefill_chunk_tokens = chunk or WHOLE
    engine.start()
    result = {"prefill_chunk_tokens": chunk}
    for name, scenario in (("full_context", full_context), ("rows_64", rows_64), ("deadline", deadline)):
        result[name] = scenario(engine)
        print(json.dumps({name: result[name]}), flush=True)
    return result


def markdown(results: dict) -> str:
    lines = [
        f"Long prompts beside {STREAMS} streams (`.venv/bin/python bench/prefill_bench.py`), SmolLM2-135M-Instruct, "
        f"transformers engine, {results['threads']} torch thread(s), {results['cpus']} CPUs, {results['date']}.",
        "",
        "| prefill_chunk_tokens | long prompt (tokens) | its answer (s) | streams' longest gap (s) "
        "| 64-row request (s) | streams' longest gap (s) | left the engine after its deadline (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for run_ in results["runs"]:
        full, rows, late = run_["full_context"], run_["rows_64"], run_["deadline"]
        lines.append(
            f"| {run_['prefill_chunk_tokens'] or 'whole prompt'} | {full['prompt_tokens']} | {full['long_prompt_s']} | "
            f"{full['streams_longest_gap_s']} | {rows['request_s']} | {rows['streams_longest_gap_s']} | "
            f"{late['left_engine_after_deadline_s']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.path.join(ROOT, ".cache", "smollm2-135m-instruct"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunks", default="512,0", help="handler.prefill_chunk_tokens values, 0: unchunked")
    parser.add_argument("--prompt-tokens", type=int, default=0, help="the long prompt's tokens (0: the whole context)")
    parser.add_argument("--out")
    parser.add_argument("--markdown")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    PROMPT_TOKENS[0] = args.prompt_tokens
    model = os.path.abspath(args.model)
    engine = Engine.load(HandlerConfig.from_section({"model_path": model}), model_dir=model)
    runs = []
    for chunk in [int(c) for c in args.chunks.split(",")]:
        runs.append(run(engine, chunk))
        print(json.dumps(runs[-1]), flush=True)
    machine = {"threads": args.threads, "cpus": os.cpu_count(), "machine": platform.machine(), "date": time.strftime("%Y-%m-%d")}
    results = {**machine, "runs": runs}
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as handle:
            handle.write(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()

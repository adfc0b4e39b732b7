"""The engine against transformers' own `generate`, and against the bare forward loop, in one process.

For the same prompts and the same number of new tokens (EOS ignored by both, so
the work is equal), each figure is the median over interleaved rounds of

- `engine_vs_generate.<mode>_b<batch>`: Engine.generate time / model.generate time
  (greedy: temperature 0; sampled: temperature 0.8, top_k 50, top_p 1);
- `floor_ratio_b1`: Engine.generate time (greedy, batch 1) / a bare cached
  forward loop (prefill, then argmax and one forward per token): the physical
  floor of this stack.

Times are CPU seconds of this process (`--clock cpu`, the default, with one
torch thread: all the work runs on the calling thread), so that other
processes on a shared machine do not enter the ratios; `--clock wall` uses
wall time. The other clock's ratios are reported too (`*_other_clock`).

    .venv/bin/python bench/engine_bench.py [--model DIR] [--tokens 64] [--rounds 7] [--threads 1]
        [--out FILE.json] [--markdown FILE.md]

`npm run bench:engine` writes bench/results/engine.json and engine.md. Prints the JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python_shim"))

from tsserve_shim.engine.transformers.engine import Engine  # noqa: E402
from tsserve_shim.model.handler_config import HandlerConfig  # noqa: E402

PROMPTS = [
    "Alan Turing was a",
    "The quick brown fox jumps over the lazy dog because",
    "Q: What is the capital of France?\nA:",
    "Once upon a time, in a land far, far away, there lived",
    "Write a short poem about the sea:",
    "1, 2, 3,",
    "The three most important things to know about Python are",
    "Hello! How are you today?",
]
SAMPLED = {"temperature": 0.8, "top_k": 50, "top_p": 1.0}
GREEDY = {"temperature": 0.0, "top_k": 0, "top_p": 1.0}


def default_model() -> str:
    real = os.path.join(ROOT, ".cache", "smollm2-135m-instruct")
    if os.path.isfile(os.path.join(real, "config.json")):
        return real
    return os.path.join(ROOT, ".cache", "tiny-llama")


def engine_request(prompt: str, tokens: int, settings: dict, seed: int) -> dict:
    return {
        "prompt": prompt,
        "max_tokens": tokens,
        "repetition_penalty": 1.0,
        "seed": seed,
        "stop": [],
        "logprobs": 0,
        "num_sequences": 1,
        "echo": False,
        "stream": False,
        **settings,
    }


class Runner:
    """The three ways to produce `tokens` new tokens for a batch of prompts."""

    def __init__(self, engine: Engine, tokens: int) -> None:
        self.engine = engine
        self.model = engine.runner.model
        self.tokens = tokens
        engine.eos_ids = set()  # equal work: no row ends early

    def left_padded(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = [self.engine.encode_prompt(p) for p in prompts]
        width = max(map(len, ids))
        input_ids = torch.full((len(ids), width), self.engine.runner.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, row in enumerate(ids):
            input_ids[i, width - len(row) :] = torch.tensor(row)
            mask[i, width - len(row) :] = 1
        return input_ids, mask

    def run_engine(self, prompts: list[str], settings: dict) -> tuple[float, float]:
        requests = [engine_request(p, self.tokens, settings, seed=i) for i, p in enumerate(prompts)]
        started = clocks()
        outcomes = self.engine.generate(requests)
        elapsed = since(started)
        assert all(o["ok"] and len(o["sequences"][0]["logprobs"]["token_ids"]) == self.tokens for o in outcomes), outcomes[0]
        return elapsed

    def run_generate(self, prompts: list[str], settings: dict) -> float:
        input_ids, mask = self.left_padded(prompts)
        sample = settings["temperature"] > 0
        kwargs = (
            dict(do_sample=True, temperature=settings["temperature"], top_k=settings["top_k"], top_p=settings["top_p"])
            if sample
            else dict(do_sample=False)
        )
        started = clocks()
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                max_new_tokens=self.tokens,
                min_new_tokens=self.tokens,
                eos_token_id=None,
                pad_token_id=self.engine.runner.pad_id,
                **kwargs,
            )
        elapsed = since(started)
        assert out.shape[1] == input_ids.shape[1] + self.tokens
        return elapsed

    def run_floor(self, prompt: str) -> float:
        """Prefill, then argmax and one cached forward per token: nothing else."""
        from transformers import DynamicCache

        ids = torch.tensor([self.engine.encode_prompt(prompt)])
        started = clocks()
        with torch.inference_mode():
            cache = DynamicCache(config=self.model.config)
            out = self.model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
            for _ in range(self.tokens):
                token = out.logits[:, -1].argmax(-1, keepdim=True)
                out = self.model(input_ids=token, cache=out.cache, use_cache=True, logits_to_keep=1)
        return since(started)


def clocks() -> tuple[float, float]:
    return time.process_time(), time.perf_counter()


def since(started: tuple[float, float]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) since ``started``."""
    cpu, wall = clocks()
    return cpu - started[0], wall - started[1]


CASES = {
    "greedy_b1": (GREEDY, 1),
    "greedy_b8": (GREEDY, 8),
    "sampled_b1": (SAMPLED, 1),
    "sampled_b8": (SAMPLED, 8),
}


def measure(runner: Runner, rounds: int) -> dict:
    times: dict[str, list[tuple[float, float]]] = {}
    for r in range(rounds):
        for name, (settings, batch) in CASES.items():
            prompts = PROMPTS[:batch]
            pair = [
                ("engine", lambda prompts=prompts, settings=settings: runner.run_engine(prompts, settings)),
                ("generate", lambda prompts=prompts, settings=settings: runner.run_generate(prompts, settings)),
            ]
            if r % 2:
                pair.reverse()  # A B, then B A: a drift of the machine's speed hits both alike
            for who, run in pair:
                times.setdefault(f"{name}.{who}", []).append(run())
        pair = [("floor", lambda: runner.run_floor(PROMPTS[0])), ("engine", lambda: runner.run_engine(PROMPTS[:1], GREEDY))]
        if r % 2:
            pair.reverse()
        for who, run in pair:
            times.setdefault(f"floor_b1.{who}", []).append(run())
    return times


def ratios(times: dict[str, list[tuple[float, float]]], clock: int) -> dict:
    med = {key: statistics.median(v[clock] for v in values) for key, values in times.items()}
    return {
        "engine_vs_generate": {name: round(med[f"{name}.engine"] / med[f"{name}.generate"], 3) for name in CASES},
        "floor_ratio_b1": round(med["floor_b1.engine"] / med["floor_b1.floor"], 3),
        "median_ms": {key: round(value * 1000, 1) for key, value in sorted(med.items())},
        "per_round_ratios": {
            name: [round(e[clock] / g[clock], 3) for e, g in zip(times[f"{name}.engine"], times[f"{name}.generate"])] for name in CASES
        },
    }


def summarise(times: dict[str, list[tuple[float, float]]], clock: str) -> dict:
    main, other = (0, 1) if clock == "cpu" else (1, 0)
    return {"clock": clock, **ratios(times, main), "other_clock": ratios(times, other)}


GOALS = {"greedy_b1": 1.0, "greedy_b8": 1.0, "sampled_b1": 0.8, "sampled_b8": 0.8}
FLOOR_GOAL = 1.1


def markdown(result: dict) -> str:
    """The figures as a table, with the goals of issue 13."""
    med = result["median_ms"]
    lines = [
        f"# Engine benchmark ({result['date']})",
        "",
        f"{result['model']}, {result['tokens']} new tokens, {result['threads']} torch thread(s), median of "
        f"{result['rounds']} interleaved rounds, {result['clock']} time; {result['machine']}; torch {result['versions']['torch']}, "
        f"transformers {result['versions']['transformers']}. Sampled: temperature 0.8, top_k 50.",
        "",
        "| figure | engine (ms) | reference (ms) | ratio | goal | met |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, goal in GOALS.items():
        ratio = result["engine_vs_generate"][name]
        lines.append(
            f"| `engine_vs_generate.{name}` | {med[name + '.engine']} | {med[name + '.generate']} (`generate`) | "
            f"{ratio} | <= {goal} | {'yes' if ratio <= goal else 'no'} |"
        )
    floor = result["floor_ratio_b1"]
    lines.append(
        f"| `floor_ratio_b1` | {med['floor_b1.engine']} | {med['floor_b1.floor']} (bare forward loop) | {floor} | "
        f"<= {FLOOR_GOAL} | {'yes' if floor <= FLOOR_GOAL else 'no'} |"
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    parser.add_argument("--out")
    parser.add_argument("--markdown")
    args = parser.parse_args()
    args.model = os.path.abspath(args.model)
    torch.set_num_threads(args.threads)
    # No prefix cache: every round sends the same prompts, and the figures compare equal work.
    section = {"model_path": args.model, "dtype": "float32", "prefix_cache_mb": 0}
    engine = Engine.load(HandlerConfig.from_section(section), model_dir=args.model)
    runner = Runner(engine, args.tokens)
    measure(runner, 1)  # warm-up
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
        },
        "model": os.path.basename(os.path.normpath(args.model)),
        "tokens": args.tokens,
        "rounds": args.rounds,
        "threads": args.threads,
        **summarise(measure(runner, args.rounds), args.clock),
    }
    text = json.dumps(result, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(result))
    print(text)


if __name__ == "__main__":
    main()

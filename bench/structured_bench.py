"""Structured output on SmolLM2-135M-Instruct, CPU, both engines, in one process per engine.

Workload: 50 chat requests asking for a book review as JSON, each about a different book,
sampled (temperature 0.7, seed = the request's index), max_tokens 160. The schema is
bench/structured-zod.ts's zod schema ``BookReview`` (an enum, two integer ranges, an array with
1-3 items, a nested object, every field required) as the handler API sends it
(``structuredOutput(BookReview)``).

- validity: the 50 answers with the schema and the same 50 without it, each checked with zod
  itself (bench/structured-zod.ts validate): how many parse as they are and validate, and for the
  free texts also how many hold a JSON object somewhere that validates;
- cost: completion tokens per second of the 50 requests in one generate call, rounds
  free-schema-schema-free (``--rounds``), and one request at a time (``--single`` requests); the
  figure is the median over rounds of schema / free. Seconds are CPU seconds of this process and
  its children (vLLM's engine core and worker), which other load on a shared machine disturbs far
  less than wall seconds (also reported).

vLLM 0.32 on a CPU kills its engine core when a seeded request's prefill is chunked
("CPU Generator does not use offset", in its model runner's bookkeeping), which 50 prompts at once
do: the vLLM runs send no seed (``--vllm-seeds`` to try again).

    .venv/bin/python bench/structured_bench.py [--engines transformers,vllm] [--rounds 2] [--out bench/results/structured.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import jsonschema
import psutil
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python_shim"))

SMOLLM2 = os.path.join(ROOT, ".cache", "smollm2-135m-instruct")
TOPICS = [
    "a sailor lost at sea",
    "the history of bread",
    "black holes",
    "a village in the Alps",
    "the French revolution",
    "a detective in Tokyo",
    "honey bees",
    "the life of Marie Curie",
    "a robot learning to paint",
    "volcanoes",
    "a summer in Sicily",
    "the Roman empire",
    "poems about rain",
    "a chess prodigy",
    "the human brain",
    "a haunted library",
    "Antarctic explorers",
    "the invention of printing",
    "a dragon and a baker",
    "coral reefs",
    "jazz in New Orleans",
    "the moon landing",
    "a family farm",
    "quantum physics for beginners",
    "a pirate queen",
    "the silk road",
    "an old lighthouse keeper",
    "the life of Gandhi",
    "mushrooms",
    "a journey on the Orient Express",
    "the Vikings",
    "love letters from the war",
    "a school for wizards",
    "climate change",
    "the life of Mozart",
    "a city under the sea",
    "ancient Egypt",
    "haiku about autumn",
    "a runaway train",
    "the history of medicine",
    "a cat who runs a hotel",
    "the Mongol empire",
    "birds of the Amazon",
    "a forgotten painter",
    "the cold war",
    "a garden through four seasons",
    "the first computers",
    "a mountain rescue",
    "the life of Frida Kahlo",
    "whales",
]


def chat_prompt(tokenizer, topic: str) -> str:
    question = (
        f"Write a short review of a book about {topic} as a JSON object with the fields title, "
        'genre (one of "fiction", "science", "history", "poetry", "biography"), rating (1 to 5), '
        "tags (1 to 3 short strings) and author (an object with name and born, a year). Only the JSON."
    )
    return tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True)


def requests(prompts: list[str], schema: dict | None, seeded: bool = True) -> list[dict]:
    out = []
    for index, prompt in enumerate(prompts):
        request = {
            "prompt": prompt,
            "max_tokens": 160,
            "temperature": 0.7,
            "top_p": 1.0,
            "top_k": 0,
            "repetition_penalty": 1.0,
            "seed": index if seeded else None,
            "stop": [],
            "logprobs": 0,
            "num_sequences": 1,
            "echo": False,
            "stream": False,
        }
        if schema is not None:
            request["structured"] = {"json_schema": schema}
        out.append(request)
    return out


def cpu_seconds() -> float:
    """CPU seconds of this process and every process under it (vLLM's engine core and workers)."""
    me = psutil.Process()
    total = 0.0
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def run(engine, batch: list[dict]) -> dict:
    """One generate call: its texts, finish reasons, completion tokens, tokens per CPU and per wall second."""
    started, cpu_started = time.perf_counter(), cpu_seconds()
    outcomes = engine.generate(batch)
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    for outcome in outcomes:
        if not outcome["ok"]:
            raise RuntimeError(f"generate failed: {outcome}")
    sequences = [outcome["sequences"][0] for outcome in outcomes]
    tokens = sum(len(seq["logprobs"]["tokens"]) for seq in sequences)
    return {
        "texts": [seq["text"] for seq in sequences],
        "finish_reasons": [seq["finish_reason"] for seq in sequences],
        "tokens": tokens,
        "wall_s": wall,
        "cpu_s": cpu,
        "tokens_per_s": tokens / cpu,
        "tokens_per_wall_s": tokens / wall,
    }


def one_at_a_time(engine, batch: list[dict]) -> dict:
    results = [run(engine, [request]) for request in batch]
    tokens, wall, cpu = (sum(r[key] for r in results) for key in ("tokens", "wall_s", "cpu_s"))
    return {"tokens": tokens, "wall_s": wall, "cpu_s": cpu, "tokens_per_s": tokens / cpu, "tokens_per_wall_s": tokens / wall}


def zod_check(runs: dict[str, list[str]]) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(runs, f)
    try:
        out = subprocess.run(
            ["npx", "tsx", "bench/structured-zod.ts", "validate", f.name], cwd=ROOT, check=True, capture_output=True, text=True
        )
    finally:
        os.unlink(f.name)
    return json.loads(out.stdout)


def jsonschema_valid(texts: list[str], schema: dict) -> int:
    valid = 0
    for text in texts:
        try:
            jsonschema.validate(json.loads(text), schema)
            valid += 1
        except (json.JSONDecodeError, jsonschema.ValidationError):
            pass
    return valid


def load(engine_name: str):
    from tsserve_shim.model.handler_config import HandlerConfig

    if engine_name == "vllm":
        from tsserve_shim.engine.vllm.engine import VllmEngine

        section = {"model_path": SMOLLM2, "engine": "vllm", "enforce_eager": True, "kv_cache_mb": 256, "max_model_len": 2048}
        return VllmEngine.load(HandlerConfig.from_section(section), model_dir=SMOLLM2).start()
    from tsserve_shim.engine.transformers.engine import Engine

    return Engine.load(HandlerConfig.from_section({"model_path": SMOLLM2, "prefix_cache_mb": 0}), model_dir=SMOLLM2)


def bench_engine(engine_name: str, schema: dict, rounds: int, single: int, seeded: bool) -> dict:
    started = time.perf_counter()
    engine = load(engine_name)
    load_s = time.perf_counter() - started
    try:
        prompts = [chat_prompt(engine.tokenizer, topic) for topic in TOPICS]
        free_batch, schema_batch = requests(prompts, None, seeded), requests(prompts, schema, seeded)
        run(engine, schema_batch[:2])  # warm-up: the grammar compiler, vLLM's structured-output backend
        batched = {"free": [], "schema": []}
        first: dict[str, dict] = {}
        for r in range(rounds):
            for kind in ("free", "schema") if r % 2 == 0 else ("schema", "free"):
                result = run(engine, free_batch if kind == "free" else schema_batch)
                first.setdefault(kind, result)
                batched[kind].append({k: result[k] for k in ("tokens", "wall_s", "cpu_s", "tokens_per_s", "tokens_per_wall_s")})
        singles = {"free": [], "schema": []}
        for r in range(rounds):
            for kind in ("free", "schema") if r % 2 == 0 else ("schema", "free"):
                singles[kind].append(one_at_a_time(engine, (free_batch if kind == "free" else schema_batch)[:single]))
    finally:
        if hasattr(engine, "shutdown"):
            engine.shutdown()
    validity = zod_check({"schema": first["schema"]["texts"], "free": first["free"]["texts"]})
    validity["schema"]["jsonschema_valid"] = jsonschema_valid(first["schema"]["texts"], schema)
    for kind in ("schema", "free"):
        validity[kind]["finish_reasons"] = {reason: first[kind]["finish_reasons"].count(reason) for reason in ("stop", "length")}
    return {
        "load_s": round(load_s, 1),
        "seeded": seeded,
        "validity": validity,
        "batched_50": summarize(batched),
        f"one_at_a_time_{single}": summarize(singles),
        "texts": {
            kind: [{"text": t, "finish_reason": r} for t, r in zip(first[kind]["texts"], first[kind]["finish_reasons"])]
            for kind in ("schema", "free")
        },
    }


def summarize(runs: dict[str, list[dict]]) -> dict:
    ratios = [s["tokens_per_s"] / f["tokens_per_s"] for s, f in zip(runs["schema"], runs["free"])]
    return {
        "free_tokens_per_cpu_s": [round(r["tokens_per_s"], 1) for r in runs["free"]],
        "schema_tokens_per_cpu_s": [round(r["tokens_per_s"], 1) for r in runs["schema"]],
        "free_tokens_per_wall_s": [round(r["tokens_per_wall_s"], 1) for r in runs["free"]],
        "schema_tokens_per_wall_s": [round(r["tokens_per_wall_s"], 1) for r in runs["schema"]],
        "free_tokens": [r["tokens"] for r in runs["free"]],
        "schema_tokens": [r["tokens"] for r in runs["schema"]],
        "schema_over_free_median": round(statistics.median(ratios), 3),
    }


def markdown(results: dict) -> str:
    lines = [
        "# Structured output (bench/structured_bench.py)",
        "",
        f"SmolLM2-135M-Instruct, {results['host']['cpus']} CPUs, torch threads {results['host']['torch_threads']}; "
        f"{len(TOPICS)} requests, temperature 0.7, max_tokens 160.",
        "",
        "| engine | valid with schema | valid without (as is / JSON found in text) | tokens per CPU s, 50 batched: free → schema | ratio | one at a time: free → schema | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results["engines"].items():
        v = r["validity"]
        single = next(value for key, value in r.items() if key.startswith("one_at_a_time"))
        b = r["batched_50"]
        lines.append(
            f"| {name} | {v['schema']['valid_as_is']}/{v['schema']['requests']} | {v['free']['valid_as_is']} / {v['free']['valid_json_found_in_text']} "
            f"| {statistics.median(b['free_tokens_per_cpu_s']):.0f} → {statistics.median(b['schema_tokens_per_cpu_s']):.0f} | {b['schema_over_free_median']} "
            f"| {statistics.median(single['free_tokens_per_cpu_s']):.1f} → {statistics.median(single['schema_tokens_per_cpu_s']):.1f} | {single['schema_over_free_median']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="transformers,vllm")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--single", type=int, default=6, help="requests sent one at a time per round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "structured.json"))
    parser.add_argument("--markdown", default=os.path.join(ROOT, "bench", "results", "structured.md"))
    parser.add_argument("--vllm-seeds", action="store_true", help="seed the vLLM requests too (see above)")
    parser.add_argument("--keep", action="store_true", help="keep the other engines' results already in --out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    schema = json.loads(
        subprocess.run(["npx", "tsx", "bench/structured-zod.ts", "schema"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    )
    results = {
        "host": {"cpus": os.cpu_count(), "torch_threads": args.threads, "python": platform.python_version(), "torch": torch.__version__},
        "schema": schema,
        "engines": {},
    }
    if args.keep and os.path.exists(args.out):
        with open(args.out) as f:
            results["engines"] = json.load(f)["engines"]
    for name in args.engines.split(","):
        results["engines"][name] = bench_engine(name, schema, args.rounds, args.single, seeded=name != "vllm" or args.vllm_seeds)
        print(json.dumps({name: {k: v for k, v in results["engines"][name].items() if k != "texts"}}, indent=1), flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    with open(args.markdown, "w") as f:
        f.write(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()

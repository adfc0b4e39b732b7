"""Prefix caching on SmolLM2-135M-Instruct, CPU: the same workloads with the cache on and off, in one process.

- ``multiple_choice``: lm-eval-style loglikelihood requests as lm-eval's
  local-completions sends them by default (``prompt_token_ids`` = context +
  continuation, ``echo``, ``logprobs: 1``, ``max_tokens: 1``, one request at a
  time): 16 questions x 4 choices, each context about 600 tokens of few-shot
  examples and the question. Two variants: few-shot examples drawn per question
  (only a question's choices share a prefix) and one fixed few-shot set (every
  request shares it). Figure: prefill CPU seconds with / without the cache, and
  the largest difference of a request's continuation logprob between the two.
- ``agentinstruct``: handlers/llama-2-7b-chat-agentinstruct.ts run by the
  shim's TsserveHandler in this process (the Node child renders both stages'
  prompts, as under TorchServe): dataset instructions shared by every
  question, stage 2 = stage 1's prompt + explanation + answer trigger, sent
  by the handler as text. Figure: stage-2 prompt tokens computed / its
  prompt tokens, and whether the answers are equal with the cache off.
- ``no_shared_prefix``: distinct prompts (no block in common) generating 32
  tokens, 8 per call, rounds of off-on-on-off: the median of the rounds'
  completion-tokens-per-CPU-second ratios on / off (and per wall second).

Prefill CPU time is this process's CPU time spent inside ModelRunner.prefill.

    .venv/bin/python bench/prefix_bench.py [--model DIR] [--threads 2] [--out FILE.json] [--markdown FILE.md]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python_shim"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python_shim", "tests"))

from handler_bench import FakeContext  # noqa: E402
from protocol_values import make_request  # noqa: E402

from tsserve_shim.engine.transformers.engine import Engine  # noqa: E402
from tsserve_shim.model.handler_config import HandlerConfig  # noqa: E402

MB = 2**20
WORDS = [
    "river",
    "mountain",
    "copper",
    "violin",
    "lantern",
    "harvest",
    "glacier",
    "orbit",
    "meadow",
    "cipher",
    "falcon",
    "marble",
    "thunder",
    "velvet",
    "compass",
    "quartz",
    "saddle",
    "beacon",
    "orchard",
    "prism",
    "tundra",
    "anchor",
    "ember",
    "willow",
    "canyon",
    "fossil",
    "harbor",
    "jasmine",
    "kettle",
    "lagoon",
    "mosaic",
    "nectar",
    "oasis",
    "pepper",
    "quiver",
    "ribbon",
]
SUBJECTS = ["chemistry", "biology", "physics", "history", "geography", "economics", "music", "astronomy"]


class PrefillClock:
    """CPU seconds spent in an engine's prefill."""

    def __init__(self, engine: Engine) -> None:
        self.seconds = 0.0
        inner = engine.runner.prefill

        def timed(rows, chunk_tokens=None):
            steps = inner(rows, chunk_tokens)  # a generator: each of its chunks is timed
            while True:
                started = time.process_time()
                try:
                    next(steps)
                except StopIteration as end:
                    return end.value
                finally:
                    self.seconds += time.process_time() - started
                yield

        engine.runner.prefill = timed


# ---------------------------------------------------------------- multiple choice


def mc_item(rng: random.Random, index: int) -> tuple[str, list[str], int]:
    subject = SUBJECTS[index % len(SUBJECTS)]
    words = rng.sample(WORDS, 6)
    question = f"In {subject}, which of these is linked to {words[0]} and {words[1]}?"
    choices = [f" the {w} of {rng.choice(WORDS)} {rng.choice(WORDS)}" for w in words[2:6]]
    return question, choices, rng.randrange(4)


def mc_example(rng: random.Random, index: int) -> str:
    question, choices, answer = mc_item(rng, index)
    listed = "\n".join(f"{'ABCD'[i]}.{c}" for i, c in enumerate(choices))
    return f"Question: {question}\n{listed}\nAnswer:{choices[answer]}\n\n"


def mc_requests(tokenizer, per_question_shots: bool, questions: int, context_tokens: int = 600) -> list[list[dict]]:
    """Per question: its 4 loglikelihood requests (token ids, as lm-eval sends them), each with its context's length."""
    pool = [mc_example(random.Random(1000 + i), i) for i in range(64)]
    out = []
    for q in range(questions):
        rng = random.Random(q)
        question, choices, _ = mc_item(random.Random(5000 + q), q)
        stem = f"Question: {question}\n" + "\n".join(f"{'ABCD'[i]}.{c}" for i, c in enumerate(choices)) + "\nAnswer:"
        shots = list(pool)
        if per_question_shots:
            rng.shuffle(shots)
        context = ""
        for shot in shots:
            if len(tokenizer(context + shot + stem)["input_ids"]) > context_tokens:
                break
            context += shot
        context += stem
        ctx_ids = tokenizer(context)["input_ids"]
        out.append(
            [
                (
                    make_request(
                        "", prompt_token_ids=ctx_ids + tokenizer(choice)["input_ids"], max_tokens=1, logprobs=1, echo=True, seed=1234
                    ),
                    len(ctx_ids),
                )
                for choice in choices
            ]
        )
    return out


def continuation_logprob(outcome: dict, ctx_len: int) -> float:
    return sum(outcome["prompt"]["token_logprobs"][ctx_len:])


def run_mc(reference: Engine, cached: Engine, per_question_shots: bool, questions: int) -> dict:
    questions = mc_requests(reference.tokenizer, per_question_shots, questions)
    figures = {}
    scores = {}
    for name, engine in (("off", reference), ("on", cached)):
        clock = PrefillClock(engine)
        started = time.perf_counter()
        outcomes = [[engine.generate([r])[0] for r, _ in choices] for choices in questions]
        figures[name] = {"prefill_cpu_s": round(clock.seconds, 3), "wall_s": round(time.perf_counter() - started, 3)}
        progress(f"multiple choice ({'per-question' if per_question_shots else 'one'} few-shot), cache {name}: {figures[name]}")
        del engine.runner.prefill
        scores[name] = [[continuation_logprob(o, n) for o, (_, n) in zip(q, choices)] for q, choices in zip(outcomes, questions)]
        if name == "on":
            prompt = sum(o["prompt_tokens"] for q in outcomes for o in q)
            hit = sum(o["cached_tokens"] for q in outcomes for o in q)
    diffs = [abs(a - b) for qa, qb in zip(scores["off"], scores["on"]) for a, b in zip(qa, qb)]
    best = {name: [max(range(4), key=q.__getitem__) for q in scores[name]] for name in scores}
    return {
        "requests": len(diffs),
        "prompt_tokens_per_request": round(prompt / len(diffs), 1),
        "cache_off": figures["off"],
        "cache_on": figures["on"],
        "prefill_cpu_ratio": round(figures["on"]["prefill_cpu_s"] / figures["off"]["prefill_cpu_s"], 3),
        "hit_token_share": round(hit / prompt, 3),
        "max_abs_logprob_diff": max(diffs),
        "same_best_choice": best["off"] == best["on"],
    }


# ---------------------------------------------------------------- AgentInstruct


INSTRUCTIONS = (
    "1. Read the question and the answer choices carefully, and note what the question asks for.\n"
    "2. Recall the facts of the subject that bear on the question: definitions, rules, and common examples.\n"
    "3. Work through each answer choice in turn and decide whether it agrees with those facts.\n"
    "4. Rule out the choices that contradict the facts, and explain briefly why each one is wrong.\n"
    "5. Pick the choice that remains, and check it once more against the question's exact wording.\n"
    "6. Give the letter of that choice as the final answer, with no other text after it.\n"
)


def agentinstruct(model_dir: str, cache_mb: int, questions: list[str], explanation_tokens: int) -> tuple[list[dict], list[str]]:
    """Every generate call's (prompt_tokens, cached_tokens) per stage, and the answers."""
    from tsserve_shim.handler import TsserveHandler

    bundle_dir = tempfile.mkdtemp(prefix="tsserve-prefix-bench-")
    subprocess.run(
        [
            process_node(),
            os.path.join(ROOT, "bin", "tsserve.mjs"),
            "bundle",
            "--handler",
            os.path.join(ROOT, "handlers", "llama-2-7b-chat-agentinstruct.ts"),
            "--out",
            bundle_dir,
        ],
        check=True,
        capture_output=True,
    )
    config = {
        "asyncCommunication": False,
        "handler": {
            "model_path": model_dir,
            "dtype": "float32",
            "quantize": "none",
            "prefix_cache_mb": cache_mb,
            "explanation_max_tokens": explanation_tokens,
        },
    }
    handler = TsserveHandler()
    context = FakeContext(bundle_dir, config, "agentinstruct-bench")
    handler.initialize(context)
    calls: list[dict] = []
    submit = handler.engine.submit

    def recording(requests, done, *rest, **kw):
        def record(outcomes):
            calls.extend({"prompt_tokens": o["prompt_tokens"], "cached_tokens": o.get("cached_tokens", 0)} for o in outcomes if o.get("ok"))
            done(outcomes)

        return submit(requests, record, *rest, **kw)

    handler.engine.submit = recording
    answers = []
    try:
        for question in questions:
            body = json.dumps(
                {
                    "prompt": question,
                    "instructions": INSTRUCTIONS,
                    "task": "multiple_choice",
                    "input_prefix": "Question: ",
                    "max_tokens": 8,
                    "temperature": 0,
                }
            ).encode()
            reply = json.loads(handler.handle([{"body": body}], context)[0])
            answers.append(reply["choices"][0]["text"])
    finally:
        handler.shutdown()
    return calls, answers


def progress(line: str) -> None:
    print(f"bench:prefix: {line}", file=sys.stderr, flush=True)


def process_node() -> str:
    return os.environ.get("TSSERVE_NODE") or "node"


def run_agentinstruct(model_dir: str, explanation_tokens: int, questions: int) -> dict:
    count, questions = questions, []
    for q in range(count):
        question, choices, _ = mc_item(random.Random(9000 + q), q)
        questions.append(f"{question}\n" + "\n".join(f"{'ABCD'[i]}.{c}" for i, c in enumerate(choices)))
    off_calls, off_answers = agentinstruct(model_dir, 0, questions, explanation_tokens)
    progress("agentinstruct, cache off: done")
    on_calls, on_answers = agentinstruct(model_dir, 512, questions, explanation_tokens)
    stage1, stage2 = on_calls[0::2], on_calls[1::2]
    computed = [c["prompt_tokens"] - c["cached_tokens"] for c in stage2]
    return {
        "questions": len(questions),
        "explanation_max_tokens": explanation_tokens,
        "stage1_prompt_tokens_median": statistics.median(c["prompt_tokens"] for c in stage1),
        "stage1_cached_tokens_median": statistics.median(c["cached_tokens"] for c in stage1),
        "stage2_prompt_tokens_median": statistics.median(c["prompt_tokens"] for c in stage2),
        "stage2_computed_tokens_median": statistics.median(computed),
        "stage2_computed_ratio": round(sum(computed) / sum(c["prompt_tokens"] for c in stage2), 3),
        "answers_equal_cache_off": off_answers == on_answers,
        "calls_off": len(off_calls),
    }


# ---------------------------------------------------------------- no shared prefix


def distinct_prompt(rng: random.Random, words: int = 48) -> str:
    return " ".join(rng.choice(WORDS) + str(rng.randrange(1000)) for _ in range(words))


def run_no_shared(reference: Engine, cached: Engine, rounds: int) -> dict:
    """Completion tokens per CPU second of this process (other processes on the machine do not
    enter it). Each round runs off, on, on, off on the same new prompts, so that warm-up and drift
    weigh on both alike; the figure is the median of the rounds' on/off ratios."""
    totals = {name: {"tokens": 0, "cpu": 0.0, "wall": 0.0} for name in ("off", "on")}
    ratios, wall_ratios = [], []
    for r in range(rounds):
        rng = random.Random(777 + r)
        prompts = [distinct_prompt(rng) for _ in range(32)]
        spent = {name: {"tokens": 0, "cpu": 0.0, "wall": 0.0} for name in ("off", "on")}
        for turn, (name, engine) in enumerate((("off", reference), ("on", cached), ("on", cached), ("off", reference))):
            batch = prompts[16 * (turn in (1, 3)) :][:16]  # each engine sees each prompt once
            calls = [[make_request(p, max_tokens=32, temperature=0.0) for p in batch[i : i + 8]] for i in (0, 8)]
            cpu, wall = time.process_time(), time.perf_counter()
            spent[name]["tokens"] += sum(
                len(s["logprobs"]["token_ids"]) for call in calls for o in engine.generate(call) for s in o["sequences"]
            )
            spent[name]["cpu"] += time.process_time() - cpu
            spent[name]["wall"] += time.perf_counter() - wall
        rate = {name: v["tokens"] / v["cpu"] for name, v in spent.items()}
        ratios.append(rate["on"] / rate["off"])
        wall_ratios.append((spent["on"]["tokens"] / spent["on"]["wall"]) / (spent["off"]["tokens"] / spent["off"]["wall"]))
        for name in totals:
            for key in totals[name]:
                totals[name][key] += spent[name][key]
        progress(f"no shared prefix, round {r + 1}/{rounds}: off {rate['off']:.1f}, on {rate['on']:.1f} tokens per CPU s")
    return {
        "rounds": rounds,
        "tokens_per_cpu_s_off": round(totals["off"]["tokens"] / totals["off"]["cpu"], 2),
        "tokens_per_cpu_s_on": round(totals["on"]["tokens"] / totals["on"]["cpu"], 2),
        "throughput_ratio": round(statistics.median(ratios), 3),
        "throughput_ratios_by_round": [round(x, 3) for x in ratios],
        "throughput_ratio_wall": round(statistics.median(wall_ratios), 3),
        "cache_hits": cached.runner.prefix_cache.stats.hit_tokens,
    }


def markdown(result: dict) -> str:
    mc, shared, ai, ns = (
        result["multiple_choice_per_question_shots"],
        result["multiple_choice_shared_shots"],
        result["agentinstruct"],
        result["no_shared_prefix"],
    )
    rows = [
        "| workload | cache off | cache on | figure |",
        "|---|---|---|---|",
        f"| multiple choice, few-shot per question ({mc['requests']} requests, {mc['prompt_tokens_per_request']} tokens each) | {mc['cache_off']['prefill_cpu_s']} s prefill CPU | {mc['cache_on']['prefill_cpu_s']} s | **{mc['prefill_cpu_ratio']}×** (max logprob diff {mc['max_abs_logprob_diff']:.1e}) |",
        f"| multiple choice, one few-shot set ({shared['requests']} requests) | {shared['cache_off']['prefill_cpu_s']} s | {shared['cache_on']['prefill_cpu_s']} s | **{shared['prefill_cpu_ratio']}×** (max logprob diff {shared['max_abs_logprob_diff']:.1e}) |",
        f"| AgentInstruct stage 2 ({ai['questions']} questions, {ai['stage2_prompt_tokens_median']} prompt tokens median) | all computed | {ai['stage2_computed_tokens_median']} computed (median) | **{ai['stage2_computed_ratio']}×** of its prompt; answers equal: {ai['answers_equal_cache_off']} |",
        f"| no shared prefix ({ns['rounds']} rounds × 2 × 16 requests of 32 tokens per engine) | {ns['tokens_per_cpu_s_off']} tokens per CPU s | {ns['tokens_per_cpu_s_on']} | **{ns['throughput_ratio']}×** (wall clock {ns['throughput_ratio_wall']}×) |",
    ]
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=os.path.join(ROOT, ".cache", "smollm2-135m-instruct"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--questions", type=int, default=16, help="multiple choice: questions of 4 choices with few-shot examples per question"
    )
    parser.add_argument("--shared-questions", type=int, default=4, help="multiple choice: questions sharing one few-shot set")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--agent-questions", type=int, default=4)
    parser.add_argument("--explanation-tokens", type=int, default=96)
    parser.add_argument(
        "--only",
        help="comma-separated workloads to run again (multiple_choice, agentinstruct, no_shared_prefix); the others are kept from --out",
    )
    parser.add_argument("--out")
    parser.add_argument("--markdown")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    section = {"model_path": args.model, "dtype": "float32", "prefix_cache_mb": 0}
    reference = Engine.load(HandlerConfig.from_section(section), model_dir=args.model)

    def fresh_cache() -> Engine:
        engine = copy.copy(reference)
        engine.use_prefix_cache(512 * MB)
        return engine

    only = set(args.only.split(",")) if args.only else {"multiple_choice", "agentinstruct", "no_shared_prefix"}
    result = {}
    if args.only and args.out and os.path.exists(args.out):
        with open(args.out) as f:
            result = json.load(f)
    result.update(
        {
            "model": os.path.basename(args.model),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} threads",
        }
    )
    if "multiple_choice" in only:
        result["multiple_choice_per_question_shots"] = run_mc(reference, fresh_cache(), True, args.questions)
        result["multiple_choice_shared_shots"] = run_mc(reference, fresh_cache(), False, args.shared_questions)
    if "no_shared_prefix" in only:
        result["no_shared_prefix"] = run_no_shared(reference, fresh_cache(), args.rounds)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    if "agentinstruct" in only:
        result["agentinstruct"] = run_agentinstruct(args.model, args.explanation_tokens, args.agent_questions)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"# Prefix caching ({result['model']}, {result['machine']})\n\n`npm run bench:prefix`\n\n" + markdown(result))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

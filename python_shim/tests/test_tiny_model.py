"""scripts/make-tiny-model.py: byte-identical reruns, and an offline load with the Auto classes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def _digests(folder: Path) -> dict[str, str]:
    """The model's files (not set-up's `.tsserve-stamp`)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")
    }


def test_same_bytes_every_run(tiny_model_dir, tmp_path):
    """A second run writes what the first wrote: the session's model (set-up's, rebuilt whenever the script
    changes, when TSSERVE_TINY_MODEL names it; else built in-process by the fixture) against a fresh one."""
    first = tiny_model_dir
    second = tmp_path / "second"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make-tiny-model.py"), "--out", str(second)], check=True)
    a, b = _digests(first), _digests(second)
    assert a == b
    assert set(a) == {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
    src = ROOT / "node_modules" / "@lenml" / "tokenizer-llama2" / "models"
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert a[name] == hashlib.sha256((src / name).read_bytes()).hexdigest()  # copied as shipped


def test_loads_offline_with_auto_classes(tiny_model_dir):
    code = f"""
import json, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
m = AutoModelForCausalLM.from_pretrained({str(tiny_model_dir)!r}, local_files_only=True)
t = AutoTokenizer.from_pretrained({str(tiny_model_dir)!r}, local_files_only=True)
c = m.config
ids = t("Alan Turing was a", return_tensors="pt").input_ids
out = m.generate(ids, max_new_tokens=3, do_sample=False)
print(json.dumps(dict(arch=type(m).__name__, layers=c.num_hidden_layers, hidden=c.hidden_size, heads=c.num_attention_heads,
    vocab=c.vocab_size, ctx=c.max_position_embeddings, bos=t.bos_token, eos=t.eos_token, first=ids[0, 0].item(),
    new=out.shape[1] - ids.shape[1], params=sum(p.numel() for p in m.parameters()))))
"""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["arch"] == "LlamaForCausalLM"
    assert info["layers"] == 2 and info["hidden"] <= 128 and info["heads"] == 4
    assert info["vocab"] == 32000 and info["ctx"] == 512
    assert info["bos"] == "<s>" and info["eos"] == "</s>" and info["first"] == 1
    assert info["new"] == 3
    assert info["params"] < 10_000_000

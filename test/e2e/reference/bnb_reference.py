"""Reference greedy completions from transformers and bitsandbytes alone, for the quantized end-to-end test.

Reads {"model_path", "quantize": ["nf4", "int8", ...], "cases": [{"prompt", "max_tokens"}]} on stdin.
For each setting it loads the model with transformers' own BitsAndBytesConfig on the CPU (float32
compute dtype, as a CPU worker uses), runs greedy ``model.generate`` on each prompt alone, and writes
{setting: {"layer", "cases"}} as JSON on stdout. None of tsserve's code is used.
"""

from __future__ import annotations

import json
import sys

import torch
from greedy import greedy_alone
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig


def bnb_config(quantize: str) -> BitsAndBytesConfig:
    if quantize == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quantize, bnb_4bit_compute_dtype=torch.float32)


def completions(model, tokenizer, cases: list[dict]) -> list[dict]:
    out = []
    for case in cases:
        prompt_ids = tokenizer(case["prompt"]).input_ids
        new_ids, hit_eos = greedy_alone(model, prompt_ids, case["max_tokens"])
        # The completion as it reads after the prompt (a SentencePiece token's leading space included).
        before = tokenizer.decode(prompt_ids, skip_special_tokens=True)
        text = tokenizer.decode(prompt_ids + new_ids, skip_special_tokens=True)[len(before) :]
        out.append({"token_count": len(new_ids), "text": text, "finish_reason": "stop" if hit_eos else "length"})
    return out


def main() -> None:
    spec = json.load(sys.stdin)
    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(spec["model_path"])
    result = {}
    for quantize in spec["quantize"]:
        model = AutoModelForCausalLM.from_pretrained(
            spec["model_path"], dtype=torch.float32, quantization_config=bnb_config(quantize), device_map={"": "cpu"}
        ).eval()
        layer = type(model.model.layers[0].mlp.down_proj).__name__
        result[quantize] = {"layer": layer, "cases": completions(model, tokenizer, spec["cases"])}
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()

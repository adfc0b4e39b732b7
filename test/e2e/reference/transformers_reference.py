"""Independent reference answers from transformers itself, for the end-to-end parity tests.

Reads a JSON spec on stdin: {"model_path": ..., "cases": [{"prompt"?: str, "messages"?: [...],
"max_tokens": int}], "echo": [str]}. For each case it renders the prompt (messages through
the tokenizer's own apply_chat_template), runs greedy ``model.generate`` on that prompt
alone, and scores the generated tokens with one separate full forward pass. For each echo
prompt it scores the prompt's own tokens. Writes JSON on stdout. None of tsserve's code is used.
"""

from __future__ import annotations

import json
import sys

import torch
from greedy import greedy_alone
from transformers import AutoModelForCausalLM, AutoTokenizer


def token_texts(tokenizer, ids: list[int]) -> list[str]:
    """The text each token adds; a token that ends inside a UTF-8 character adds "" and the next carries it.

    The last token adds whatever is left, so that the texts put together are the decoded text.
    """
    texts, shown = [], ""
    for i in range(len(ids)):
        full = tokenizer.decode(ids[: i + 1], skip_special_tokens=True)
        if full.endswith("\ufffd") and i < len(ids) - 1:
            full = shown
        texts.append(full[len(shown) :])
        shown = full
    return texts


def scored(model, ids: list[int], start: int) -> list[float]:
    """log_softmax of one forward pass over ids: the logprob of ids[i] for i >= start."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return [logprobs[i - 1, ids[i]].item() for i in range(start, len(ids))]


def main() -> None:
    spec = json.load(sys.stdin)
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(spec["model_path"])
    model = AutoModelForCausalLM.from_pretrained(spec["model_path"], dtype=torch.float32).eval()
    cases = []
    for case in spec["cases"]:
        prompt = case.get("prompt")
        if prompt is None:
            prompt = tokenizer.apply_chat_template(case["messages"], tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer(prompt).input_ids
        new_ids, hit_eos = greedy_alone(model, prompt_ids, case["max_tokens"])
        cases.append(
            {
                "prompt": prompt,
                "prompt_tokens": len(prompt_ids),
                "token_ids": new_ids,
                "tokens": token_texts(tokenizer, new_ids),
                "text": tokenizer.decode(new_ids, skip_special_tokens=True),
                "finish_reason": "stop" if hit_eos else "length",
                "token_logprobs": scored(model, prompt_ids + new_ids, len(prompt_ids)) if new_ids else [],
            }
        )
    echo = []
    for prompt in spec.get("echo", []):
        ids = tokenizer(prompt).input_ids
        echo.append({"prompt_tokens": len(ids), "token_logprobs": [None, *scored(model, ids, 1)]})
    json.dump({"cases": cases, "echo": echo}, sys.stdout)


if __name__ == "__main__":
    main()

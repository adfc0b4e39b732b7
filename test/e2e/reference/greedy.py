"""Greedy `model.generate` on one prompt by itself: the reference the end-to-end suites compare against."""

from __future__ import annotations

import torch


def eos_ids(model) -> set[int]:
    eos = model.generation_config.eos_token_id
    return set(eos if isinstance(eos, list) else [eos])


def greedy_alone(model, prompt_ids: list[int], max_tokens: int) -> tuple[list[int], bool]:
    """The new token ids (EOS cut off) and whether generation ended with EOS."""
    stops = eos_ids(model)
    with torch.no_grad():
        out = model.generate(
            torch.tensor([prompt_ids]),
            attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
            max_new_tokens=max_tokens,
            do_sample=False,
            pad_token_id=next(iter(stops)),
        )
    new_ids = out[0, len(prompt_ids) :].tolist()
    hit_eos = bool(new_ids) and new_ids[-1] in stops
    return (new_ids[:-1] if hit_eos else new_ids), hit_eos

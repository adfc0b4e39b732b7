"""Prompt logprobs as numbers (Scores): each prompt position's logprob and its best alternatives, whichever
engine computed them (the transformers engine from its logits or its prefix cache's blocks, the vLLM engine
from vLLM's prompt logprobs). The output processor turns them into echo's texts (output.prompt_logprobs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class Scores:
    """Prompt logprobs of consecutive positions: position p's token given the tokens before it."""

    logprobs: list[float | None]
    top_ids: list[list[int]]
    top_values: list[list[float]]

    def __getitem__(self, positions: slice) -> Scores:
        return Scores(self.logprobs[positions], self.top_ids[positions], self.top_values[positions])

    def __add__(self, other: Scores) -> Scores:
        return Scores(self.logprobs + other.logprobs, self.top_ids + other.top_ids, self.top_values + other.top_values)

    @staticmethod
    def empty() -> Scores:
        return Scores([], [], [])

    @staticmethod
    def first() -> Scores:
        """Position 0: a prompt's first token has no score."""
        return Scores([None], [[]], [[]])


def position_scores(logits: torch.Tensor, ids: Sequence[int], k: int, chunk: int = 512) -> Scores:
    """The scores of positions 1..len(ids)-1 of ``ids`` from ``logits`` [len(ids), vocab] (the logits
    at every position): each next token's logprob and the k best, a chunk of positions at a time."""
    target = torch.tensor(list(ids[1:]), device=logits.device)
    scores = Scores.empty()
    for start in range(0, len(ids) - 1, chunk):
        lp = torch.log_softmax(logits[start : min(start + chunk, len(ids) - 1)].float(), dim=-1)
        scores.logprobs += lp.gather(1, target[start : start + lp.shape[0]].unsqueeze(-1)).squeeze(-1).tolist()
        if k > 0:
            v, i = lp.topk(k, dim=-1)
            scores.top_values += v.tolist()
            scores.top_ids += i.tolist()
        else:
            scores.top_values += [[] for _ in range(lp.shape[0])]
            scores.top_ids += [[] for _ in range(lp.shape[0])]
    return scores

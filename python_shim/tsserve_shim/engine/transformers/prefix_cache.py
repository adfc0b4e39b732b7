"""Prefix caching: the KV of token prefixes computed before, reused instead of recomputed.

The cache holds full blocks of ``block_tokens`` tokens. A block is named by its
parent block and its own tokens, so it stands for the whole prefix up to its end
(vLLM's automatic prefix caching names blocks by a hash of the same two things;
here the name is exact, so two prefixes never share a block by collision). The
blocks form a tree that a lookup walks from the root.

Rows never point into the cache: a hit copies the blocks' KV into the row's decode
batch. Evicting a block therefore never touches KV that a running row uses, and
the budget counts the cache's own blocks only. Unused blocks go least recently
used first, a leaf before its parent (a lookup touches its chain from the leaf
up, so the least recently used block is always a leaf).

A block can also carry its tokens' prompt logprobs (each token's logprob given
the tokens before it and the ``SCORE_TOP_K`` best alternatives), computed when an
echo (scoring) request went through it. A scoring request only reuses blocks
that carry them, so its answer does not depend on whether the cache hit.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from ..common.scores import Scores

BLOCK_TOKENS = 16
SCORE_TOP_K = 20  # alternatives kept per scored position: OpenAI's top_logprobs maximum

# The KV of one block: keys and values, per layer [kv_heads, block_tokens, head_dim]
# (a list, or one tensor with the layers first).
BlockKV = tuple["list[torch.Tensor] | torch.Tensor", "list[torch.Tensor] | torch.Tensor"]


@dataclass(eq=False)
class Block:
    uid: int
    parent: Block | None
    tokens: tuple[int, ...]
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    scores: Scores | None = None
    children: int = 0
    nbytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.nbytes = sum(t.numel() * t.element_size() for t in itertools.chain(self.keys, self.values))


@dataclass
class CacheStats:
    prompt_tokens: int = 0  # prompt tokens of the rows that looked up the cache
    hit_tokens: int = 0  # of those, the ones whose KV came from the cache
    evicted_blocks: int = 0


class PrefixCache:
    def __init__(self, budget_bytes: int, block_tokens: int = BLOCK_TOKENS) -> None:
        if budget_bytes <= 0:
            raise ValueError("a prefix cache needs a budget above 0 bytes (0 turns the cache off)")
        self.budget_bytes = budget_bytes
        self.room_bytes: int | None = None  # what a KV budget leaves it beside the running rows (shrink)
        self.block_tokens = block_tokens
        self.nbytes = 0
        self.stats = CacheStats()
        self._blocks: OrderedDict[tuple[int, tuple[int, ...]], Block] = OrderedDict()  # least recently used first
        self._uids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._blocks)

    @property
    def limit_bytes(self) -> int:
        """Its budget, or less while the running rows need the rest of a shared KV budget."""
        return self.budget_bytes if self.room_bytes is None else max(0, min(self.budget_bytes, self.room_bytes))

    def shrink(self, room_bytes: int) -> None:
        """Hold at most ``room_bytes`` from now on (least recently used leaves go first) until shrunk again."""
        self.room_bytes = room_bytes
        while self.nbytes > self.limit_bytes:
            victim = next((k for k, b in self._blocks.items() if b.children == 0), None)
            if victim is None:
                break
            self._remove(victim)

    # ------------------------------------------------------------ lookup

    def match(self, ids: Sequence[int], scored: bool = False) -> list[Block]:
        """The longest chain of cached full blocks that ``ids`` begins with (with scores, when ``scored``)."""
        chain: list[Block] = []
        for tokens in self._full_blocks(ids):
            block = self._blocks.get((self._uid(chain), tokens))
            if block is None or (scored and block.scores is None):
                break
            chain.append(block)
        self._touch(chain)
        return chain

    def first_missing(self, ids: Sequence[int], chain: Sequence[Block]) -> tuple[int, ...] | None:
        """The prefix of ``ids`` up to the end of the first full block past ``chain`` (None when there is none)."""
        end = (len(chain) + 1) * self.block_tokens
        return tuple(ids[:end]) if end <= len(ids) else None

    def missing_prefixes(self, ids: Sequence[int], chain: Sequence[Block]) -> set[tuple[int, ...]]:
        """Every block-aligned prefix of ``ids`` past ``chain``: what computing ``ids`` would add."""
        ends = range((len(chain) + 1) * self.block_tokens, len(ids) + 1, self.block_tokens)
        return {tuple(ids[:end]) for end in ends}

    # ------------------------------------------------------------ insertion

    def extend(
        self,
        ids: Sequence[int],
        kv: Callable[[int, int], BlockKV],
        scores: Scores | None = None,
    ) -> list[Block]:
        """Cache every full block of ``ids``. ``kv(start, end)`` gives the KV of positions
        [start, end) for the blocks not cached yet (tensors of its own, not views); ``scores`` (positions 0.. of ``ids``),
        when given, is attached to blocks that lack it. Stops early when the budget
        cannot hold another block. Returns the chain of blocks now cached."""
        chain: list[Block] = []
        for index, tokens in enumerate(self._full_blocks(ids)):
            start, end = index * self.block_tokens, (index + 1) * self.block_tokens
            key = (self._uid(chain), tokens)
            block = self._blocks.get(key)
            if block is None:
                block = self._add(key, chain[-1] if chain else None, tokens, kv(start, end))
                if block is None:
                    break
            if scores is not None and block.scores is None and len(scores.logprobs) >= end:
                block.scores = scores[start:end]
            chain.append(block)
        self._touch(chain)
        return chain

    def _add(self, key, parent: Block | None, tokens: tuple[int, ...], kv: BlockKV) -> Block | None:
        keys, values = kv
        block = Block(next(self._uids), parent, tokens, list(keys), list(values))
        if block.nbytes > self.limit_bytes:
            return None
        self._blocks[key] = block
        self.nbytes += block.nbytes
        if parent is not None:
            parent.children += 1
        self._evict(keep=block)
        return block if key in self._blocks else None

    def _evict(self, keep: Block) -> None:
        """Drop least recently used leaves until the cache fits its budget (never ``keep`` or its ancestors)."""
        protected = set()
        node: Block | None = keep
        while node is not None:
            protected.add(node.uid)
            node = node.parent
        while self.nbytes > self.limit_bytes:
            victim = next((k for k, b in self._blocks.items() if b.children == 0 and b.uid not in protected), None)
            if victim is None:
                self._remove(self._key(keep))  # nothing else to give up: the new block does not fit
                return
            self._remove(victim)

    def _remove(self, key) -> None:
        block = self._blocks.pop(key)
        self.nbytes -= block.nbytes
        self.stats.evicted_blocks += 1
        if block.parent is not None:
            block.parent.children -= 1

    def clear(self) -> None:
        self._blocks.clear()
        self.nbytes = 0

    # ------------------------------------------------------------ helpers

    def _full_blocks(self, ids: Sequence[int]):
        n = self.block_tokens
        for start in range(0, len(ids) - n + 1, n):
            yield tuple(int(t) for t in ids[start : start + n])

    @staticmethod
    def _uid(chain: Sequence[Block]) -> int:
        return chain[-1].uid if chain else 0

    def _key(self, block: Block) -> tuple[int, tuple[int, ...]]:
        return (block.parent.uid if block.parent is not None else 0, block.tokens)

    def _touch(self, chain: Sequence[Block]) -> None:
        for block in reversed(chain):
            key = self._key(block)
            if key in self._blocks:
                self._blocks.move_to_end(key)

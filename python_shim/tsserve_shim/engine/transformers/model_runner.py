"""The model side of the engine: a transformers causal LM with the two operations the engine's loop
is made of, prefill (new rows' prompts in one forward, giving a DecodeBatch) and the decode step (choose
every row's next token from its logits: a StepOutput for the output processor), and the prefix cache
whose KV they reuse. It does every forward; it writes no text and streams nothing.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Generator
from dataclasses import dataclass

import torch

from ..common.output import SampledToken, StepOutput
from ..common.rows import expire
from ..common.scores import Scores, position_scores
from .batch import DecodeBatch, DecodeRow
from .grammar import Grammars
from .kv_cache import mergeable
from .prefix_cache import SCORE_TOP_K, Block, PrefixCache
from .sampling import select_tokens
from .transformers_compat import cache_keyword, forward_with_cache

log = logging.getLogger(__name__)

# A prefill: yields between two chunks' forwards, returns the rows' decode batch (model_runner.prefill).
PrefillSteps = Generator[None, None, "DecodeBatch | None"]


def _slices_logits_by_mask(model) -> bool:
    """Whether the model's forward takes a boolean (batch, length) ``logits_to_keep`` (transformers' slice_logits_to_keep)."""
    try:
        return "slice_logits_to_keep" in inspect.getsource(type(model).forward)
    except (OSError, TypeError):
        return False


def _plain_kv(model) -> bool:
    """Whether the model's KV cache is plain full attention, which batches can be joined and cached in."""
    from transformers import DynamicCache

    return mergeable(DynamicCache(config=model.config))


@dataclass
class PromptLayout:
    """One prefill forward's inputs. Per row: [padding, cached prefix | padding, computed suffix], the cached
    part given to the model as its KV cache."""

    reused: list[int]  # prompt positions each row takes from the prefix cache
    suffixes: list[list[int]]  # the prompt ids each row computes
    input_ids: torch.Tensor  # [B, S]: the suffixes, left-padded
    mask: torch.Tensor  # [B, C + S]: 1 where a row has a real token, cached or computed
    positions: torch.Tensor  # [B, S]

    @property
    def width(self) -> int:
        return int(self.input_ids.shape[1])

    @property
    def cached_width(self) -> int:
        return max(self.reused)


class ModelRunner:
    def __init__(self, model, tokenizer, *, device: str | torch.device | None = None, name_or_path: str | None = None):
        self.model = model
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.vocab_size = int(getattr(model.config, "vocab_size", None) or len(tokenizer))
        self.name_or_path = name_or_path or getattr(model, "name_or_path", None) or "model"
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.pad_id = int(pad)
        self._keeps_positions_by_mask = _slices_logits_by_mask(model)
        cache_keyword(model)  # a model whose forward takes no KV cache is refused here, not at its first step
        self.kv_joinable = _plain_kv(model)  # whether batches join (else a running batch takes no new rows)
        self.prefix_cache: PrefixCache | None = None  # use_prefix_cache turns it on
        self.grammars = Grammars(tokenizer, self.vocab_size)  # structured output (grammar.py)

    def __copy__(self) -> ModelRunner:
        """A runner on the same model with a prefix cache of its own (another model's KV must never be found in it)."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        if self.prefix_cache is not None:
            other.prefix_cache = PrefixCache(self.prefix_cache.budget_bytes, self.prefix_cache.block_tokens)
        return other

    # ------------------------------------------------------------------ the prefix cache

    def use_prefix_cache(self, budget_bytes: int) -> None:
        """Turn on prefix caching with a budget (0 turns it off). Models whose KV cache is not plain
        full attention (sliding windows, quantized caches) run without it."""
        if budget_bytes <= 0:
            self.prefix_cache = None
        elif not self.kv_joinable:
            log.warning("tsserve: %s has no plain full-attention KV cache; prefix caching is off", self.name_or_path)
            self.prefix_cache = None
        else:
            self.prefix_cache = PrefixCache(budget_bytes)

    def drop_prefix_cache(self) -> bool:
        """Give up the prefix cache's KV (until it is sized again); False when it held none."""
        cache = self.prefix_cache
        if cache is None or not cache.nbytes:
            return False
        log.warning("tsserve: out of memory in a decode step; dropping the prefix cache's %.1f MiB", cache.nbytes / 2**20)
        cache.shrink(0)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return True

    def keep_finished(self, batch: DecodeBatch) -> None:
        """Cache the KV of the rows that just finished: prompt and generated tokens (a multi-step
        handler's next prompt extends them)."""
        if self.prefix_cache is None:
            return
        for j, row in enumerate(batch.rows):
            if row.done and row.chosen_ids:
                ids = row.prompt_ids + row.chosen_ids[:-1]  # the last token chosen was never fed
                if batch.tokens_held(j) == len(ids):
                    self.prefix_cache.extend(ids, batch.row_kv(j))

    # ------------------------------------------------------------------ prefill

    def prefill(self, rows: list[DecodeRow], chunk_tokens: int | None = None) -> PrefillSteps:
        """Prefill the rows that are still in time, ``chunk_tokens`` prompt positions a forward (None: all
        at once): a generator that yields between two forwards and returns the rows' decode batch (None
        when no row needs a token). Its driver (core.PrefillJob) decodes the running rows between chunks.
        An echo request's first row gets its prompt's Scores (``Row.prompt_scores``).

        With a prefix cache, each row starts from the longest cached prefix of its prompt. Rows
        that would compute the same new prefix as a row before them wait for a second forward,
        so that prefix is computed once (a lm-eval question's choices, a request's n sequences)."""
        expire(rows)
        live = [row for row in rows if not row.done]
        if not live:
            return None
        if self.prefix_cache is None:
            batch = yield from self._forward_prompts(live, [[] for _ in live], chunk_tokens)
        else:
            first, chains, later = self._split_shared(live)
            batch = yield from self._forward_prompts(first, chains, chunk_tokens)
            if later:
                batch.join((yield from self._forward_prompts(later, self._lookup(later), chunk_tokens)))
        for row in live:
            if row.max_tokens == 0:
                row.finish_reason = "length"
        return batch if batch.prune() else None

    def _lookup(self, rows: list[DecodeRow]) -> list[list[Block]]:
        """Each row's cached prefix: scoring rows only take blocks that carry prompt logprobs."""
        return [self.prefix_cache.match(row.prompt_ids, scored=row.scores_prompt) if self._can_reuse(row) else [] for row in rows]

    @staticmethod
    def _can_reuse(row: DecodeRow) -> bool:
        return not row.scores_prompt or row.k <= SCORE_TOP_K

    def _split_shared(self, rows: list[DecodeRow]) -> tuple[list[DecodeRow], list[list[Block]], list[DecodeRow]]:
        """The rows to prefill now with their cached chains, and the rows whose first uncached block
        one of them computes (looked up again once that forward has cached it)."""
        first: list[DecodeRow] = []
        chains: list[list[Block]] = []
        later: list[DecodeRow] = []
        computing: set[tuple[int, ...]] = set()
        for row, chain in zip(rows, self._lookup(rows)):
            missing = self.prefix_cache.first_missing(row.prompt_ids, chain)
            if missing is not None and missing in computing:
                later.append(row)
                continue
            first.append(row)
            chains.append(chain)
            computing |= self.prefix_cache.missing_prefixes(row.prompt_ids, chain)
        return first, chains, later

    def _reused(self, row: DecodeRow, chain: list[Block]) -> int:
        """How many prompt positions a row takes from the cache: the whole chain, except that the
        last prompt token is always computed (its logits choose the first new token), and that a
        scoring row recomputes the chain's last position (its logits score the next block's first token)."""
        reused = min(len(chain) * self.prefix_cache.block_tokens, len(row.prompt_ids) - 1) if chain else 0
        if row.scores_prompt and reused:
            reused = len(chain) * self.prefix_cache.block_tokens - 1
        return max(0, reused)

    def _forward_prompts(self, rows: list[DecodeRow], chains: list[list[Block]], chunk_tokens: int | None) -> PrefillSteps:
        """Forwards over the rows' prompts past what each takes from the cache, ``chunk_tokens`` positions
        each (yielding between two): the decode batch (the next-token logits of every row). Echo rows get
        their prompt's Scores, from one forward; the new full blocks of every prompt go to the cache."""
        from transformers import DynamicCache

        layout = self._layout(rows, chains)
        cache = DynamicCache(config=self.model.config)
        if layout.cached_width:
            self._load_prefixes(cache, chains, layout.reused, layout.cached_width)
        echo_rows = [i for i, row in enumerate(rows) if row.scores_prompt]
        keep = self._logits_to_keep(layout, echo_rows)
        chunk = layout.width if echo_rows or not chunk_tokens else chunk_tokens
        last_start = (layout.width - 1) // chunk * chunk
        for start in range(0, last_start, chunk):
            _, cache = self._forward_window(cache, layout, start, start + chunk, 1)
            yield
        out, cache = self._forward_window(cache, layout, last_start, layout.width, keep)
        self._count_lookups(rows, layout.reused)  # once the forward ran: a prefill that raises is retried, not counted twice
        last, echo_logits = self._split_logits(out.logits, keep, layout, echo_rows)
        scores = self._score_prompts(rows, chains, layout.reused, echo_logits)
        del echo_logits
        batch = DecodeBatch(
            rows,
            cache,
            layout.mask,
            layout.positions[:, -1],
            last.to(device=self.device, dtype=torch.float32),
            self._seen(rows, last.shape[-1]),
        )
        if self.prefix_cache is not None:
            for i, row in enumerate(rows):
                self.prefix_cache.extend(row.prompt_ids, batch.row_kv(i), scores.get(i))
        return batch

    def _forward_window(self, cache, layout: PromptLayout, start: int, end: int, keep):
        """One forward over the computed positions [start, end) of every row, on top of ``cache``."""
        return forward_with_cache(
            self.model,
            cache,
            input_ids=layout.input_ids[:, start:end],
            attention_mask=layout.mask[:, : layout.cached_width + end],
            position_ids=layout.positions[:, start:end],
            logits_to_keep=keep,
        )

    def _layout(self, rows: list[DecodeRow], chains: list[list[Block]]) -> PromptLayout:
        reused = [self._reused(row, chain) for row, chain in zip(rows, chains)]
        suffixes = [row.prompt_ids[r:] for row, r in zip(rows, reused)]
        cached_width, width = max(reused), max(len(s) for s in suffixes)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        input_mask = torch.zeros((len(rows), width), dtype=torch.long)
        cached_mask = torch.zeros((len(rows), cached_width), dtype=torch.long)
        for i, (suffix, r) in enumerate(zip(suffixes, reused)):
            input_ids[i, width - len(suffix) :] = torch.tensor(suffix, dtype=torch.long)
            input_mask[i, width - len(suffix) :] = 1
            cached_mask[i, cached_width - r :] = 1
        input_ids, input_mask = input_ids.to(self.device), input_mask.to(self.device)
        start = torch.tensor(reused, dtype=torch.long, device=self.device).unsqueeze(-1)
        positions = (start + input_mask.cumsum(-1) - 1).clamp(min=0)
        for row, r in zip(rows, reused):
            row.cached_tokens = r
        return PromptLayout(reused, suffixes, input_ids, torch.cat([cached_mask.to(self.device), input_mask], dim=1), positions)

    def _logits_to_keep(self, layout: PromptLayout, echo_rows: list[int]) -> torch.Tensor | int:
        """The last position's logits of every row, and every computed position's of the echo rows: by a
        mask where the model takes one, else all positions (0) when an echo row needs them."""
        if not echo_rows:
            return 1
        if not self._keeps_positions_by_mask:
            return 0
        keep = torch.zeros((len(layout.suffixes), layout.width), dtype=torch.bool, device=self.device)
        keep[:, -1] = True
        for i in echo_rows:
            keep[i, layout.width - len(layout.suffixes[i]) :] = True
        return keep

    @staticmethod
    def _split_logits(
        logits: torch.Tensor, keep, layout: PromptLayout, echo_rows: list[int]
    ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Each row's next-token logits [B, V], and each echo row's logits at its computed positions."""
        if not isinstance(keep, torch.Tensor):
            return logits[:, -1, :], {i: logits[i, layout.width - len(layout.suffixes[i]) :] for i in echo_rows}
        flat = logits.reshape(-1, logits.shape[-1])  # the kept positions of every row, one after another
        ends = keep.sum(-1).cumsum(0)
        starts = (ends - keep.sum(-1)).tolist()
        return flat[ends - 1], {i: flat[starts[i] : int(ends[i])] for i in echo_rows}

    def _score_prompts(
        self, rows: list[DecodeRow], chains: list[list[Block]], reused: list[int], echo_logits: dict[int, torch.Tensor]
    ) -> dict[int, Scores]:
        """Each echo row's prompt Scores (set on the row too): the cached chain's, then the computed positions'.
        With a prefix cache they keep SCORE_TOP_K alternatives, for the blocks they are stored with."""
        scores: dict[int, Scores] = {}
        for i, logits in echo_logits.items():
            row, r = rows[i], reused[i]
            k = max(row.k, SCORE_TOP_K) if self.prefix_cache is not None else row.k
            scores[i] = self._cached_scores(chains[i], r + 1) + position_scores(logits, row.prompt_ids[r:], k)
            row.prompt_scores = scores[i]
        return scores

    def _seen(self, rows: list[DecodeRow], vocab: int) -> torch.Tensor | None:
        """[B, V] bool: each row's prompt tokens, for the repetition penalty (None when no row has one)."""
        if all(row.penalty == 1.0 for row in rows):
            return None
        seen = torch.zeros((len(rows), vocab), dtype=torch.bool, device=self.device)
        for i, row in enumerate(rows):
            seen[i, torch.tensor(row.prompt_ids, dtype=torch.long, device=self.device)] = True
        return seen

    def _count_lookups(self, rows: list[DecodeRow], reused: list[int]) -> None:
        if self.prefix_cache is not None:
            for row, r in zip(rows, reused):
                self.prefix_cache.stats.prompt_tokens += len(row.prompt_ids)
                self.prefix_cache.stats.hit_tokens += r

    @staticmethod
    def _cached_scores(chain: list[Block], positions: int) -> Scores:
        """The stored scores of the first ``positions`` prompt positions (from the chain's blocks)."""
        joined = Scores.first()
        if chain:
            joined = Scores.empty()
            for block in chain:
                joined = joined + block.scores
                if len(joined.logprobs) >= positions:
                    break
        return joined[:positions]

    def _load_prefixes(self, cache, chains: list[list[Block]], reused: list[int], width: int) -> None:
        """Put each row's cached prefix (its first ``reused`` positions) into ``cache``, left-padded to ``width``."""
        first = next(chain for chain in chains if chain)[0]
        for layer in range(len(first.keys)):
            keys = first.keys[layer].new_zeros((len(chains), first.keys[layer].shape[0], width, first.keys[layer].shape[-1]))
            values = first.values[layer].new_zeros(keys.shape)
            for i, (chain, r) in enumerate(zip(chains, reused)):
                if r:
                    keys[i, :, width - r :] = torch.cat([b.keys[layer] for b in chain], dim=1)[:, :r]
                    values[i, :, width - r :] = torch.cat([b.values[layer] for b in chain], dim=1)[:, :r]
            cache.update(keys, values, layer)

    # --------------------------------------------------------------- decode step

    def decode_step(self, batch: DecodeBatch, eos_ids: set[int]) -> StepOutput:
        """Choose every row's next token from the batch's logits (``eos_ids``: what a grammar lets end a row)."""
        logits = batch.logits
        chosen = select_tokens(
            self.grammars.constrain(batch.rows, logits, eos_ids),
            temperature=batch.temperature,
            top_k=batch.top_k,
            top_p=batch.top_p,
            penalty=batch.penalty,
            seen=batch.seen,
            keys=batch.keys,
            steps=batch.steps,
        )
        total = torch.logsumexp(logits, dim=-1)
        chosen_lp = (logits.gather(1, chosen.unsqueeze(-1)).squeeze(-1) - total).tolist()
        top_ids, top_values = self._alternatives(batch, logits, total)
        batch.take(chosen)
        self.grammars.accept(batch.rows, batch.chosen_list)
        sampled = [SampledToken(token, chosen_lp[j], top_ids[j], top_values[j]) for j, token in enumerate(batch.chosen_list)]
        return StepOutput(list(batch.rows), sampled)

    @staticmethod
    def _alternatives(batch: DecodeBatch, logits: torch.Tensor, total: torch.Tensor) -> tuple[list[list[int]], list[list[float]]]:
        """Each row's most likely tokens and their logprobs, as many as the batch's most wanting row asks for."""
        k_max = max(row.k for row in batch.rows)
        if k_max <= 0:
            return [[] for _ in batch.rows], [[] for _ in batch.rows]
        values, indices = logits.topk(k_max, dim=-1)
        return indices.tolist(), (values - total.unsqueeze(-1)).tolist()

    def forward(self, batch: DecodeBatch) -> None:
        """Feed every row's chosen token: the batch's next logits."""
        batch.forward(self.model)

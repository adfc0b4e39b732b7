"""The model side of the engine: a transformers causal LM and its tokenizer, with the two
operations the scheduler's loop is made of: prefill (new rows' prompts in one forward, giving
a DecodeBatch) and the decode step (choose every row's next token from its logits, take it in).
"""
from __future__ import annotations

import inspect
import logging

import torch

from ..common import output
from ..common.output import Scores
from ..common.prompts import PromptTokenizer, context_length, eos_token_ids
from ..common.rows import Row, expire
from .batch import DecodeBatch
from .kv_cache import mergeable
from .grammar import Grammars
from .prefix_cache import SCORE_TOP_K, Block, PrefixCache
from .sampling import select_tokens
from .transformers_compat import cache_keyword, forward_with_cache

log = logging.getLogger(__name__)


def _slices_logits_by_mask(model) -> bool:
    """Whether the model's forward takes a boolean (batch, length) ``logits_to_keep`` (transformers' slice_logits_to_keep)."""
    try:
        return "slice_logits_to_keep" in inspect.getsource(type(model).forward)
    except (OSError, TypeError):
        return False


class ModelRunner(PromptTokenizer):
    def __init__(self, model, tokenizer, *, device: str | torch.device | None = None, name_or_path: str | None = None):
        self.model = model
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        config = model.config
        generation = getattr(model, "generation_config", None)
        super().__init__(
            tokenizer,
            context_length=context_length(config, tokenizer),
            eos_ids=eos_token_ids(getattr(generation, "eos_token_id", None) if generation else None, tokenizer),
            vocab_size=int(getattr(config, "vocab_size", None) or len(tokenizer)),
            name_or_path=name_or_path or getattr(model, "name_or_path", None) or "model",
            device=str(self.device),
        )
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.pad_id = int(pad)
        self._keeps_positions_by_mask = _slices_logits_by_mask(model)
        cache_keyword(model)  # a model whose forward takes no KV cache is refused here, not at its first step
        self.prefix_cache: PrefixCache | None = None  # use_prefix_cache turns it on
        self.grammars = Grammars(tokenizer, self.vocab_size)  # structured output (grammar.py)

    def admissible(self, requests):
        """PromptTokenizer's admission, and a 400 for a ``structured`` that does not compile."""
        outcomes, prompts = super().admissible(requests)
        self.grammars.refuse_unsupported(requests, outcomes, prompts)
        return outcomes, prompts

    # ------------------------------------------------------------------ prefill

    def prefill(self, rows: list[Row]) -> DecodeBatch | None:
        """Prefill the rows that are still in time: their decode batch (None when no row needs a
        token). An echo request's prompt logprobs go to its first row (``Row.prompt_logprobs``).

        With a prefix cache, each row starts from the longest cached prefix of its prompt. Rows
        that would compute the same new prefix as a row before them wait for a second forward,
        so that prefix is computed once (a lm-eval question's choices, a request's n sequences)."""
        expire(rows)
        live = [row for row in rows if not row.done]
        if not live:
            return None
        if self.prefix_cache is None:
            batch = self._forward_prompts(live, [[] for _ in live])
        else:
            first, chains, later = self._split_shared(live)
            batch = self._forward_prompts(first, chains)
            if later:
                batch.join(self._forward_prompts(later, self._lookup(later)))
        for row in live:
            if row.max_tokens == 0:
                row.finish_reason = "length"
        return batch if batch.prune() else None

    def _lookup(self, rows: list[Row]) -> list[list[Block]]:
        """Each row's cached prefix: scoring rows only take blocks that carry prompt logprobs."""
        return [self.prefix_cache.match(row.prompt_ids, scored=row.scores_prompt) if self._can_reuse(row) else [] for row in rows]

    @staticmethod
    def _can_reuse(row: Row) -> bool:
        return not row.scores_prompt or row.k <= SCORE_TOP_K

    def _split_shared(self, rows: list[Row]) -> tuple[list[Row], list[list[Block]], list[Row]]:
        """The rows to prefill now with their cached chains, and the rows whose first uncached block
        one of them computes (looked up again once that forward has cached it)."""
        first: list[Row] = []
        chains: list[list[Block]] = []
        later: list[Row] = []
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

    def _reused(self, row: Row, chain: list[Block]) -> int:
        """How many prompt positions a row takes from the cache: the whole chain, except that the
        last prompt token is always computed (its logits choose the first new token), and that a
        scoring row recomputes the chain's last position (its logits score the next block's first token)."""
        reused = min(len(chain) * self.prefix_cache.block_tokens, len(row.prompt_ids) - 1) if chain else 0
        if row.scores_prompt and reused:
            reused = len(chain) * self.prefix_cache.block_tokens - 1
        return max(0, reused)

    def _forward_prompts(self, rows: list[Row], chains: list[list[Block]]) -> DecodeBatch:
        """One forward over the rows' prompts past what each takes from the cache. Layout per row:
        [padding, cached prefix | padding, computed suffix], the cached part given to the model as its
        KV cache. Returns the decode batch (the next-token logits of every row); an echo request's
        first row gets its prompt logprobs, and the new full blocks of every prompt go to the cache."""
        from transformers import DynamicCache

        device = self.device
        reused = [self._reused(row, chain) for row, chain in zip(rows, chains)]
        suffixes = [row.prompt_ids[r:] for row, r in zip(rows, reused)]
        cached_width, width = max(reused), max(len(s) for s in suffixes)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        input_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, suffix in enumerate(suffixes):
            input_ids[i, width - len(suffix) :] = torch.tensor(suffix, dtype=torch.long)
            input_mask[i, width - len(suffix) :] = 1
        cached_mask = torch.zeros((len(rows), cached_width), dtype=torch.long)
        for i, r in enumerate(reused):
            cached_mask[i, cached_width - r :] = 1
        input_ids, input_mask = input_ids.to(device), input_mask.to(device)
        mask = torch.cat([cached_mask.to(device), input_mask], dim=1)
        start = torch.tensor(reused, dtype=torch.long, device=device).unsqueeze(-1)
        positions = (start + input_mask.cumsum(-1) - 1).clamp(min=0)
        for row, r in zip(rows, reused):
            row.cached_tokens = r

        cache = DynamicCache(config=self.model.config)
        if cached_width:
            self._load_prefixes(cache, chains, reused, cached_width)
        echo_rows = {i for i, row in enumerate(rows) if row.scores_prompt}
        keep: torch.Tensor | int = 1
        if echo_rows:
            keep = 0
            if self._keeps_positions_by_mask:
                keep = torch.zeros((len(rows), width), dtype=torch.bool, device=device)
                keep[:, -1] = True
                for i in echo_rows:
                    keep[i, width - len(suffixes[i]) :] = True
        out, cache = forward_with_cache(
            self.model, cache, input_ids=input_ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep
        )
        if self.prefix_cache is not None:  # counted once the forward ran: a prefill that raises is retried, not counted twice
            for row, r in zip(rows, reused):
                self.prefix_cache.stats.prompt_tokens += len(row.prompt_ids)
                self.prefix_cache.stats.hit_tokens += r
        echo_logits: dict[int, torch.Tensor] = {}
        if isinstance(keep, torch.Tensor):
            flat = out.logits.reshape(-1, out.logits.shape[-1])
            ends = keep.sum(-1).cumsum(0)
            last = flat[ends - 1]
            starts = (ends - keep.sum(-1)).tolist()
            for i in echo_rows:
                echo_logits[i] = flat[starts[i] : int(ends[i])]
        else:
            last = out.logits[:, -1, :]
            for i in echo_rows:
                echo_logits[i] = out.logits[i, width - len(suffixes[i]) :]
        scores: dict[int, Scores] = {}
        for i, logits in echo_logits.items():
            row, r = rows[i], reused[i]
            k = max(row.k, SCORE_TOP_K) if self.prefix_cache is not None else row.k
            cached = self._cached_scores(chains[i], r + 1)
            scores[i] = cached + output.position_scores(logits, row.prompt_ids[r:], k)
            row.prompt_logprobs = output.prompt_logprobs(self.tokenizer, scores[i], row.prompt_ids, row.k, row.prompt)
        del echo_logits
        seen = None
        if any(r.penalty != 1.0 for r in rows):
            seen = torch.zeros((len(rows), last.shape[-1]), dtype=torch.bool, device=device)
            for i, row in enumerate(rows):
                seen[i, torch.tensor(row.prompt_ids, dtype=torch.long, device=device)] = True
        batch = DecodeBatch(rows, cache, mask, positions[:, -1], last.to(device=device, dtype=torch.float32), seen)
        if self.prefix_cache is not None:
            for i, row in enumerate(rows):
                self.prefix_cache.extend(row.prompt_ids, batch.row_kv(i), scores.get(i))
        return batch

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

    def use_prefix_cache(self, budget_bytes: int) -> None:
        """Turn on prefix caching with a budget (0 turns it off). Models whose KV cache is not plain
        full attention (sliding windows, quantized caches) run without it."""
        from transformers import DynamicCache

        if budget_bytes <= 0:
            self.prefix_cache = None
        elif not mergeable(DynamicCache(config=self.model.config)):
            log.warning("tsserve: %s has no plain full-attention KV cache; prefix caching is off", self.name_or_path)
            self.prefix_cache = None
        else:
            self.prefix_cache = PrefixCache(budget_bytes)

    # --------------------------------------------------------------- decode step

    def decode_step(self, batch: DecodeBatch) -> None:
        """Choose every row's next token from the batch's logits and take it into the row."""
        logits = batch.logits
        chosen = select_tokens(
            self.grammars.constrain(batch.rows, logits, self.eos_ids),
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
        k_max = max(r.k for r in batch.rows)
        top_vals = top_ids = None
        if k_max > 0:
            values, indices = logits.topk(k_max, dim=-1)
            top_vals, top_ids = (values - total.unsqueeze(-1)).tolist(), indices.tolist()
        batch.take(chosen)
        self.grammars.accept(batch.rows, batch.chosen_list)
        for j, (row, token) in enumerate(zip(batch.rows, batch.chosen_list)):
            tops = output.top_alternatives(row.decoder, top_ids[j][: row.k], top_vals[j][: row.k]) if row.k > 0 else None
            row.chosen_ids.append(token)
            output.advance(row, token, chosen_lp[j], tops, self.eos_ids)
            output.stream(row)

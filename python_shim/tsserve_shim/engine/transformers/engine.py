"""The transformers engine, in vLLM v1's split: the tokenizer side (common/prompts.PromptTokenizer, which it
is), a model runner that does every forward (ModelRunner), a scheduler that decides who runs each step
(Scheduler), the output processor (common/output.py), and the one decode loop that drives them (EngineCore).

``Engine.generate`` takes GenerateRequests (contract.py) and returns GenerateOutcome dicts
(src/protocol/messages.ts); ``submit`` does the same without waiting, for the
worker. Requests that are refused (400) or run out of time (504) do not fail
their batch mates. ``common/output.py`` describes the shapes.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Hashable, Sequence

from ...model.handler_config import HandlerConfig
from ...model.load_plan import LoadPlan, plan_load_here
from ...model.loading import load_model, load_tokenizer
from ..common.prompts import PromptTokenizer, context_length, eos_token_ids
from ..common.rows import OnDelta
from ..common.submit import Done
from ..contract import GenerateRequest, Outcome, Requests
from .core import EngineCore
from .kv_budget import budget_for, kv_budget_bytes, prefix_cache_bytes
from .model_runner import ModelRunner
from .scheduler import Scheduler
from .transformers_compat import check_transformers_version

log = logging.getLogger(__name__)


class Engine(PromptTokenizer):
    def __init__(self, model, tokenizer, *, device=None, name_or_path: str | None = None) -> None:
        runner = ModelRunner(model, tokenizer, device=device, name_or_path=name_or_path)
        generation = getattr(model, "generation_config", None)
        super().__init__(
            tokenizer,
            context_length=context_length(model.config, tokenizer),
            eos_ids=eos_token_ids(getattr(generation, "eos_token_id", None) if generation else None, tokenizer),
            vocab_size=runner.vocab_size,
            name_or_path=runner.name_or_path,
            device=str(runner.device),
        )
        self.runner = runner
        self.plan: LoadPlan | None = None  # set by Engine.load
        self.scheduler = Scheduler()
        self.core = EngineCore(runner, self, self.scheduler)

    def __copy__(self) -> Engine:
        """A copy (a test's engine with another model or EOS) runs its own decode loop over a runner of its
        own, with a prefix cache of its own (another model's KV must never be found in it)."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.runner = copy.copy(self.runner)
        other.scheduler = Scheduler(self.scheduler.max_num_seqs, self.scheduler.prefill_chunk_tokens)
        other.scheduler.kv_budget = self.scheduler.kv_budget
        other.core = EngineCore(other.runner, other, other.scheduler)
        return other

    @classmethod
    def load(
        cls,
        config: HandlerConfig,
        *,
        model_dir: str,
        gpu_id: int | None = None,
        device_type: str | None = None,
        device_ids: Sequence[int] | None = None,
        startup_timeout_s: float | None = None,
        workers: int | None = None,
    ) -> Engine:
        """Load per the model-config.yaml ``handler:`` section (see model.load_plan.plan_load). It loads in the
        worker's own process, so TorchServe's start-up timeout alone bounds it (``startup_timeout_s`` unused);
        its workers may share a GPU group, each within gpu_max_memory (``workers`` unused)."""
        check_transformers_version()
        plan: LoadPlan = plan_load_here(config, model_dir=model_dir, gpu_id=gpu_id, device_type=device_type, device_ids=device_ids)
        log.info("tsserve: loading %s on %s (dtype %s, quantize %s)", plan.model_path, plan.device, plan.dtype_name, plan.quantize)
        tokenizer = load_tokenizer(plan)
        model = load_model(plan)
        engine = cls(model, tokenizer, device=plan.device, name_or_path=config.model_path)
        engine.plan = plan
        engine.scheduler.max_num_seqs = config.max_num_seqs
        engine.scheduler.prefill_chunk_tokens = config.prefill_chunk_tokens
        engine.use_kv_budget(kv_budget_bytes(config.kv_cache_mb, plan, model.get_memory_footprint()))
        engine.use_prefix_cache(prefix_cache_bytes(config.prefix_cache_mb, engine.scheduler.kv_budget))
        return engine

    def use_kv_budget(self, total_bytes: int | None) -> None:
        """Admit rows only while their KV fits in ``total_bytes`` (None: no bound), the prefix cache included."""
        self.scheduler.kv_budget = budget_for(self.runner.model, total_bytes)
        if self.scheduler.kv_budget is not None:
            log.info("tsserve: KV budget %.1f MiB (%d bytes a token)", total_bytes / 2**20, self.scheduler.kv_budget.bytes_per_token)

    def use_prefix_cache(self, budget_bytes: int) -> None:
        """Turn on prefix caching with a budget (0 turns it off; ModelRunner.use_prefix_cache)."""
        self.runner.use_prefix_cache(budget_bytes)

    def admissible(self, requests: Sequence[GenerateRequest]):
        """PromptTokenizer's admission, and a 400 for a ``structured`` that does not compile."""
        outcomes, prompts = super().admissible(requests)
        self.runner.grammars.refuse_unsupported(requests, outcomes, prompts)
        return outcomes, prompts

    @property
    def stats(self):
        """What the decode loop measures (common/stats.py)."""
        return self.core.stats

    def start(self) -> Engine:
        """Run the decode loop on its own thread: the worker submits from the bridge's."""
        self.core.start()
        return self

    def shutdown(self) -> None:
        """Nothing to stop: the decode loop's thread is a daemon, and the model goes with the worker."""

    def generate(self, requests: Requests, on_delta: OnDelta | None = None, deadlines=None) -> list[Outcome]:
        """One GenerateOutcome per GenerateRequest. ``deadlines``: one Deadline for every
        request, or one (or None) per request, checked every decode step."""
        return self.core.generate(requests, on_delta, deadlines)

    def submit(self, requests: Requests, done: Done, on_delta: OnDelta | None = None, deadlines=None, tag: Hashable | None = None) -> None:
        self.core.submit(requests, done, on_delta, deadlines, tag)

    def cancel(self, tag: Hashable) -> None:
        self.core.cancel(tag)

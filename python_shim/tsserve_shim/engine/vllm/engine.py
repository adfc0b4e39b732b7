"""The vLLM engine: vLLM's async engine (v1 ``AsyncLLM``) behind the same interface as the
transformers engine (``Engine``), so the worker, the bridge and the Node side do not know which runs.

vLLM does the scheduling, batching, sampling, stop strings, prefix caching and logprobs. What it
sends back for each request is taken into tsserve's rows token by token by the same output processor
as the transformers engine's (common/output.py), so the text, the per-token texts and offsets, the
streamed deltas and the GenerateOutcome are built by the same code, from the same tokenizer (vLLM's own).
Its calls and their cancels are common/calls.py's, as the transformers engine's are.

The engine runs on an asyncio loop of its own thread; ``submit`` may be called from any thread and
``done`` is called on that loop's thread, as the transformers engine calls it on its scheduler's.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...model.handler_config import HandlerConfig
from ...model.load_plan import plan_load_here
from ..common.calls import Call, Calls
from ..common.output import OutputProcessor, SampledToken, generation_failure
from ..common.prompts import PromptTokenizer, eos_token_ids, needs_tokenizing
from ..common.rows import CANCELLED, TIMED_OUT, OnDelta, Row, build_rows
from ..common.sampling import GREEDY_BELOW
from ..common.scores import Scores
from ..common.stats import EngineStats, metrics_enabled
from ..common.submit import Done, wait_for_outcomes
from ..contract import GenerateRequest, Outcome, Requests, engine_request_id, error_outcome, generate_requests
from .args import VllmLaunch, not_ready_message, unknown_vllm_args, vllm_launch
from .failures import refusal, request_failure, unanswered
from .stats import stat_logger_factory

log = logging.getLogger(__name__)

# How long a worker whose vLLM engine died goes on answering (503) before it exits.
EXIT_AFTER_ENGINE_DEATH_S = 2.0

# vLLM refuses temperatures above this (SamplingParams._verify_args); tsserve says so before it does.
VLLM_MAX_TEMPERATURE = 2.0


def sampling_choice(request: GenerateRequest) -> tuple[float, float, int]:
    """(temperature, top_p, top_k) as vLLM takes them. A greedy request (temperature under GREEDY_BELOW,
    or the seed's top_p 0 with one sequence) is temperature 0: vLLM's greedy path, no generator and
    no top-k. top_p 0 with several sequences keeps only the most likely token by top_k 1 (vLLM refuses
    n > 1 at temperature 0)."""
    temperature, top_p, top_k = request.temperature, request.top_p, request.top_k
    if temperature < GREEDY_BELOW or (top_p <= 0.0 and request.num_sequences == 1):
        return 0.0, 1.0, 0
    if top_p <= 0.0:
        return temperature, 1.0, 1
    return temperature, top_p, top_k


def sampling_params(request: GenerateRequest, forced_token: int | None = None):
    """vLLM's SamplingParams for one GenerateRequest. Asks for the chosen tokens' logprobs only when
    the request reports them (logprobs None: none), and for the prompt's when it echoes. ``forced_token``:
    full-context scoring (VllmEngine._generate), one greedy token that can only be this one."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    from .structured import vllm_structured_outputs

    if request.temperature > VLLM_MAX_TEMPERATURE:
        raise ValueError(f"temperature {request.temperature:g} is above {VLLM_MAX_TEMPERATURE:g}, the most the vLLM engine takes")
    temperature, top_p, top_k = sampling_choice(request)
    n, k = request.num_sequences, request.logprobs
    if forced_token is not None:  # its logprob is the model's own: vLLM takes raw logprobs before the mask
        temperature, top_p, top_k, n, k = 0.0, 1.0, 0, 1, k or 0
    return SamplingParams(
        n=n,
        max_tokens=max(1, request.max_tokens),  # max_tokens 0 (scoring): the one token is dropped
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        repetition_penalty=request.repetition_penalty,
        seed=request.seed if temperature > 0.0 else None,  # greedy needs none; a seed would give it a generator
        stop=list(request.stop) or None,
        logprobs=k,
        prompt_logprobs=(k or 0) if request.echo else None,
        skip_special_tokens=False,  # stop strings are matched on the text tsserve reports, special tokens included
        detokenize=bool(request.stop),  # tsserve builds the text itself; vLLM's only matches stop strings
        output_kind=RequestOutputKind.DELTA,
        allowed_token_ids=None if forced_token is None else [forced_token],
        structured_outputs=vllm_structured_outputs(request.structured),
    )


def ranked(position: Mapping[int, Any] | None, k: int) -> tuple[list[int], list[float]]:
    """The k most likely tokens of one position of vLLM's logprobs (a dict token id -> Logprob)."""
    if not position or k <= 0:
        return [], []
    best = sorted(position.items(), key=lambda item: item[1].rank if item[1].rank is not None else 1 << 30)[:k]
    return [token for token, _ in best], [lp.logprob for _, lp in best]


def prompt_scores(prompt_logprobs: Sequence[Mapping[int, Any] | None], ids: Sequence[int], k: int) -> Scores:
    """vLLM's prompt logprobs as the Scores the output processor reads (position 0 has none)."""
    scores = Scores.first()
    for pos in range(1, len(ids)):
        position = prompt_logprobs[pos] if pos < len(prompt_logprobs) else None
        chosen = position.get(ids[pos]) if position else None
        top_ids, top_values = ranked(position, k)
        scores.logprobs.append(chosen.logprob if chosen is not None else None)
        scores.top_ids.append(top_ids)
        scores.top_values.append(top_values)
    return scores


@dataclass(eq=False)
class VllmCall(Call):
    """A call as this engine serves it: one asyncio task per admitted request."""

    tasks: list = field(default_factory=list)


class VllmEngine(PromptTokenizer):
    def __init__(self, llm, *, name_or_path: str, device: str, loop: asyncio.AbstractEventLoop, stats: EngineStats | None = None) -> None:
        tokenizer = llm.get_tokenizer()
        model_config = llm.model_config
        generation = model_config.try_get_generation_config() or {}
        super().__init__(
            tokenizer,
            context_length=model_config.max_model_len,
            eos_ids=eos_token_ids(generation.get("eos_token_id"), tokenizer),
            vocab_size=model_config.get_vocab_size(),
            name_or_path=name_or_path,
            device=device,
        )
        self.llm = llm
        self.stats = stats or EngineStats()  # fed by vLLM's stat logger (stats.py) once load passes it
        self.processor = OutputProcessor(self)
        self.launch: VllmLaunch | None = None  # set by load
        self._loop = loop
        self._calls = Calls()
        self._request_ids = itertools.count(1)
        self._dying = False

    # ------------------------------------------------------------ loading

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
    ) -> VllmEngine:
        import dataclasses

        import torch
        from vllm.engine.arg_utils import AsyncEngineArgs

        unknown_vllm_args(config, {f.name for f in dataclasses.fields(AsyncEngineArgs)})
        plan = plan_load_here(config, model_dir=model_dir, gpu_id=gpu_id, device_type=device_type, device_ids=device_ids)
        launch = vllm_launch(
            config,
            plan,
            gpu_total_memory=(lambda i: torch.cuda.get_device_properties(i).total_memory) if plan.on_gpu else None,
            environ=os.environ,
            startup_timeout_s=startup_timeout_s,
            workers=workers,
        )
        os.environ.update(launch.environ)
        log.info("tsserve: starting vLLM for %s on %s (%s)", plan.model_path, plan.device, launch.engine_args)
        stats = EngineStats()
        loop = _start_loop()
        llm = _start_vllm(launch, stats, startup_timeout_s, loop)
        engine = cls(llm, name_or_path=config.model_path, device=plan.device, loop=loop, stats=stats)
        engine.launch = launch
        return engine

    def start(self) -> VllmEngine:
        return self

    def shutdown(self) -> None:
        """Stop vLLM's engine processes, then this engine's loop (its tasks cancelled first, not dropped)."""
        self.llm.shutdown()
        asyncio.run_coroutine_threadsafe(_cancel_tasks(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    # ------------------------------------------------------------ the engine interface

    def submit(self, requests: Requests, done: Done, on_delta: OnDelta | None = None, deadlines=None, tag: Hashable | None = None) -> None:
        call = VllmCall.submitted(requests, done, on_delta, deadlines, tag)
        self._calls.add(call)  # before the loop runs it: a cancel sent right after the submit finds it, even mid-tokenizing
        asyncio.run_coroutine_threadsafe(self._serve(call), self._loop)

    def cancel(self, tag: Hashable) -> None:
        """End the calls submitted with ``tag`` (common/calls.py): vLLM aborts their requests."""
        cancelled = self._calls.cancel(tag)
        if cancelled:
            self._loop.call_soon_threadsafe(_cancel_requests, cancelled)

    def generate(self, requests: Requests, on_delta: OnDelta | None = None, deadlines=None, timeout: float | None = None) -> list[Outcome]:
        """submit and wait for the outcomes (not from the engine's own loop thread)."""
        return wait_for_outcomes(lambda done: self.submit(requests, done, on_delta, deadlines), timeout, who="the vLLM engine")

    # ------------------------------------------------------------ on the loop

    async def _serve(self, call: VllmCall) -> None:
        call.started = time.perf_counter()
        call.outcomes = [None] * len(call.requests)
        try:
            await self._admit(call)
            # One request's failure is its own: an exception of one task is that request's outcome.
            results = await asyncio.gather(*call.tasks, return_exceptions=True) if call.tasks else [None] * len(call.prompts)
            self._answer(call, results)
        except Exception as error:
            for task in call.tasks:  # none is left running with no one to answer
                task.cancel()
            failure = generation_failure(error, len(call.requests))
            call.outcomes = [o if o is not None else failure for o in call.outcomes]
        finally:
            self._calls.end(call)
        call.deliver([o if o is not None else error_outcome(500, "no outcome") for o in call.outcomes])

    async def _admit(self, call: VllmCall) -> None:
        """Parse and tokenize the call's requests, make its rows, and start one task per admitted request
        (none when the call was cancelled meanwhile: its rows end cancelled)."""
        call.requests = generate_requests(call.requests)
        if not any(map(needs_tokenizing, call.requests)):
            call.outcomes, call.prompts = self.admissible(call.requests)
        else:  # tokenizing a long prompt here would stop every request's stream: on a thread of the executor
            call.outcomes, call.prompts = await asyncio.get_running_loop().run_in_executor(None, self.admissible, call.requests)
        call.rows = build_rows(self.tokenizer, call.requests, call.prompts, call.deadlines, call.on_delta)
        if call.cancelled:
            _finish(call.rows, CANCELLED)
            return
        call.tasks = [
            asyncio.ensure_future(self._run(call.requests[index], ids, [row for row in call.rows if row.request == index], call.tag))
            for index, ids in call.prompts.items()
        ]

    def _answer(self, call: VllmCall, results: list) -> None:
        """Each admitted request's outcome: its task's failure, else what its rows hold."""
        failed = [generation_failure(r, 1) if isinstance(r, BaseException) else r for r in results]
        finished = {index: ids for (index, ids), failure in zip(call.prompts.items(), failed) if failure is None}
        for (index, _), failure in zip(call.prompts.items(), failed):
            if failure is not None:
                call.outcomes[index] = failure
        for index, outcome in self.processor.outcomes(finished, call.rows, time.perf_counter() - call.started).items():
            call.outcomes[index] = outcome

    async def _run(self, request: GenerateRequest, ids: list[int], rows: list[Row], tag: Hashable | None = None) -> Outcome | None:
        """Generate one request's rows; None when they ended (even by deadline or cancel), else its error outcome."""
        from vllm.exceptions import VLLMClientError
        from vllm.v1.engine.exceptions import EngineDeadError

        try:
            params = sampling_params(request, ids[-1] if self._scores_full_context(request, ids) else None)
        except (ValueError, VLLMClientError) as error:
            return refusal(error)
        deadline = rows[0].deadline
        try:
            async with asyncio.timeout(None if deadline is None else max(0.0, deadline.at - time.monotonic())):
                return await self._generate(request, ids, rows, params, engine_request_id(tag, next(self._request_ids)))
        except TimeoutError:
            _finish(rows, TIMED_OUT)
        except asyncio.CancelledError:
            _finish(rows, CANCELLED)
        except EngineDeadError as error:
            self._engine_died(error)
            return error_outcome(503, f"the vLLM engine died ({error}); the worker is restarting")
        except Exception as error:
            return request_failure(error)
        return None

    def _engine_died(self, error: BaseException) -> None:
        """vLLM does not restart a dead engine core: the worker exits once the requests it held are
        answered, and TorchServe starts a new one (a new model load)."""
        if self._dying:
            return
        self._dying = True
        log.error(
            "tsserve: vLLM's engine died (%s); this worker exits in %g s so that TorchServe restarts it", error, EXIT_AFTER_ENGINE_DEATH_S
        )
        self._loop.call_later(EXIT_AFTER_ENGINE_DEATH_S, _exit_worker)

    def _scores_full_context(self, request: GenerateRequest, ids: list[int]) -> bool:
        """A prompt of max_model_len tokens scored (max_tokens 0, lm-eval's rolling windows): vLLM generates at least
        one token, so it would refuse the prompt. It gets all but the last token as the prompt and the last
        as its one generated token, so every position is scored, as the transformers engine scores it."""
        return request.max_tokens == 0 and len(ids) >= self.context_length > 1

    async def _generate(self, request: GenerateRequest, ids: list[int], rows: list[Row], params, request_id: str) -> Outcome | None:
        """Take vLLM's outputs into the rows; an error outcome when vLLM ends a sequence with no answer."""
        from vllm.inputs import TokensPrompt

        scoring_only = request.max_tokens == 0
        full = self._scores_full_context(request, ids)
        prompt = ids[:-1] if full else ids
        async for out in self.llm.generate(TokensPrompt(prompt_token_ids=prompt), params, request_id):
            positions = out.prompt_logprobs
            if full and positions is not None:
                positions = [*positions, out.outputs[0].logprobs[0] if out.outputs and out.outputs[0].logprobs else None]
            if positions is not None and rows[0].scores_prompt and rows[0].prompt_scores is None:
                rows[0].prompt_scores = prompt_scores(positions, ids, rows[0].k)
            for completion in out.outputs:
                failure = unanswered(completion.finish_reason, completion.index)
                if failure is not None:
                    return failure
                row = rows[completion.index]
                row.cached_tokens = int(out.num_cached_tokens or 0)
                if scoring_only:
                    if completion.finish_reason is not None:
                        _finish(rows if full else [row], "length")  # full: one sequence stands for all
                else:
                    self._take(row, completion)

    def _take(self, row: Row, completion) -> None:
        """Take a completion's new tokens into its row through the output processor, as the transformers
        engine takes each step's; a stop token id of vLLM's that is no EOS ends the row as one."""
        if row.done:
            return
        tokens = list(completion.token_ids)
        for j, token in enumerate(tokens):
            position = completion.logprobs[j] if completion.logprobs else None
            chosen = position.get(token) if position else None
            top_ids, top_values = ranked(position, row.k)
            ends = j == len(tokens) - 1 and completion.finish_reason == "stop" and not isinstance(completion.stop_reason, str)
            self.processor.take(row, SampledToken(token, chosen.logprob if chosen is not None else 0.0, top_ids, top_values, ends))
            if row.done:
                return
        if completion.finish_reason is not None:
            self.processor.finish(row, "length" if completion.finish_reason == "length" else "stop")


def _exit_worker() -> None:
    os._exit(70)  # EX_SOFTWARE; no clean-up: vLLM's processes are gone or follow their parent


def _finish(rows: list[Row], reason: str) -> None:
    for row in rows:
        if not row.done:
            row.finish_reason = reason


def _cancel_requests(calls: Sequence[VllmCall]) -> None:
    """On the loop: vLLM aborts the cancelled calls' requests (a call still tokenizing starts none)."""
    for call in calls:
        for task in call.tasks:
            task.cancel()


async def _cancel_tasks() -> None:
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _start_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="tsserve-vllm", daemon=True).start()
    return loop


def _start_vllm(launch: VllmLaunch, stats: EngineStats, startup_timeout_s: float | None, loop: asyncio.AbstractEventLoop):
    """vLLM's async engine on ``loop`` (its processes are the worker's reaper's: worker/reaper.py). A start
    slower than vLLM's ready timeout says why."""
    try:
        return asyncio.run_coroutine_threadsafe(
            _create_async_llm(launch.engine_args, stat_logger_factory(stats) if metrics_enabled() else None), loop
        ).result()
    except TimeoutError as error:
        raise TimeoutError(not_ready_message(startup_timeout_s)) from error


async def _create_async_llm(engine_args: Mapping[str, Any], stat_logger=None):
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    # disable_log_stats stays on: vLLM's own periodic log lines stay off, and its stats reach the stat logger.
    return AsyncLLM.from_engine_args(AsyncEngineArgs(**engine_args), stat_loggers=[stat_logger] if stat_logger else None)

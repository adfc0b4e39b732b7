"""The TorchServe handler that bridges to a TypeScript handler bundle.

TorchServe loads a generated module (one class subclassing TsserveHandler).
`initialize` loads the model, starts the engine's decode loop and the bridge
thread (which starts `node handler.mjs`). Every request takes one path: it is
sent to Node as a `handle` call, Node's generate calls join the engine's running
batch, and the answer comes back as soon as that request's rows are done.

With `asyncCommunication: true` (the default of every shipped config) TorchServe
awaits `handle` for each request as it arrives, so requests join and leave the
running batch at any step. Without it, TorchServe's own batch is one `handle`
call, waited for here; its requests are admitted to the engine at the same step.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from ..bridge import protocol
from ..bridge.channel import Bridge, ChildSpec, closed, unavailable
from ..bridge.errors import ShimConfigError
from ..bridge.node_process import find_node
from ..model.handler_config import DEFAULTS, HandlerConfig
from ..model.placement import model_workers, worker_device_ids
from . import envelope as kserve
from .handle_timeout import handle_timeout
from .limits import GenerateLimits, max_response_size
from .metrics import report_generated, start_publishing
from .reaper import Reaper
from .recovery import watch_readiness
from .replies import body_bytes, chunk_body, failures, respond, send_chunk, stream_over, with_retirements
from .requests import decode_body, decoded_by_torchserve, with_url_path
from .socket_writer import one_writer
from .trace import header_problem, tagged, torchserve_request_id, trace_id

logger = logging.getLogger(__name__)

# How long a child that let a request run out of time has to answer a ping before it is killed.
PING_TIMEOUT_S = 2.0
# How long the 504 of a request whose child was killed waits for the new child (a Node start: ~0.3 s, seconds when busy).
RESTART_WAIT_S = 10.0
# Requests that ended early (timed out, their client gone) remembered for the refusal of a late generate.
REMEMBERED_ENDINGS = 4096


def continuous_batching(model_config: dict) -> bool:
    """The model config chooses it: TorchServe's own `asyncCommunication: true`."""
    return bool(model_config.get("asyncCommunication"))


@dataclass
class _Batch:
    """A handle call in flight: where its stream chunks go, and when its generation must stop."""

    context: Any
    loop: asyncio.AbstractEventLoop
    deadline: Any
    requests: int = 1
    trace: str | None = None  # its requests' trace ids (worker/trace.py), for the bridge's and engine's log lines
    ticket: Any = None  # the bridge's ticket of its handle call
    streamed_bytes: int = 0  # what its stream chunks came to (handler.max_stream_bytes bounds it)


class _Awaitable:
    """`handle`'s answer under asyncCommunication: TorchServe's async worker awaits it. It is
    falsy so that a KServe envelope (whose handle is synchronous) passes it on unformatted."""

    def __init__(self, coroutine) -> None:
        self._coroutine = coroutine

    def __await__(self):
        return self._coroutine.__await__()

    def __bool__(self) -> bool:
        return False


class TsserveHandler:
    """Subclasses set `bundle_file`; TorchServe instantiates the subclass."""

    bundle_file = "handler.mjs"

    def __init__(self) -> None:
        self.initialized = False
        self.engine = None
        self.metrics = None  # publishes the engine's LLM metrics (metrics.py)
        self.bridge: Bridge | None = None
        self.reaper: Reaper | None = None  # ends what the worker started once it ends (worker/reaper.py)
        self.asynchronous = False
        self._batch_ids = itertools.count(1)
        self._batches: dict[int, _Batch] = {}
        # batch id -> (status, why) of a handle call that ended before Node answered it (its late generate calls are refused)
        self._ended: collections.OrderedDict = collections.OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None  # runs handle when TorchServe calls it synchronously
        self.max_response_size: int | None = None  # bytes of one response body the frontend accepts
        self.max_stream_bytes: int = DEFAULTS["max_stream_bytes"]  # bytes one handle call may stream

    # ------------------------------------------------------------ TorchServe API

    def initialize(self, context) -> None:
        props = context.system_properties
        self.model_dir = props.get("model_dir") or os.getcwd()
        self.model_config = dict(context.model_yaml_config or {})
        section = self.model_config.get("handler")
        if not isinstance(section, dict) or not section.get("model_path"):
            raise ShimConfigError("model-config.yaml needs a handler: section with model_path")
        config = HandlerConfig.from_section(section)
        node = find_node(config.node)
        bundle = os.path.join(self.model_dir, self.bundle_file)
        if not os.path.isfile(bundle):
            raise ShimConfigError(f"handler bundle {bundle} is missing from the archive")
        self.model_name = context.manifest.get("model", {}).get("modelName") or props.get("model_name") or "model"
        self.handle_timeout = handle_timeout(config.handle_timeout_s, self.model_config.get("responseTimeout"))
        self.asynchronous = continuous_batching(self.model_config)
        self.max_response_size = max_response_size()
        self.max_stream_bytes = config.max_stream_bytes
        self.reaper = Reaper.start()
        try:
            with self.reaper.watching_new_children():  # vLLM's processes and the Node child, from the first
                self._load_engine(config, props.get("gpu_id"), context)
                self._start_bridge(ChildSpec(node, bundle, self.model_dir, self._handshake(props)))
        except BaseException:
            self.reaper.close()  # a start that failed leaves none of its processes behind
            raise
        version = context.manifest.get("model", {}).get("modelVersion")
        if self.asynchronous and version:
            watch_readiness(self.model_name, str(version))  # TorchServe 0.12's in-place restart of an async worker
        self.initialized = True

    def _load_engine(self, config: HandlerConfig, gpu_id, context) -> None:
        from ..engine.registry import load_engine  # torch loads only when a model does

        _set_cpu_threads(cpu_threads(config.cpu_threads, on_cpu=gpu_id is None))
        self.engine = load_engine(
            config,
            model_dir=self.model_dir,
            gpu_id=gpu_id,
            device_type=self.model_config.get("deviceType"),
            device_ids=worker_device_ids(self.model_config),
            startup_timeout_s=self.model_config.get("startupTimeout"),
            workers=model_workers(self.model_config),
        ).start()
        self.metrics = start_publishing(self.engine, context, self.model_name)
        self.generate_limits = GenerateLimits.from_config(config, self.engine.info()["context_length"])

    def _handshake(self, props) -> dict:
        """What the Node child is told at its start (HandshakeParams)."""
        return {
            "protocol_version": protocol.PROTOCOL_VERSION,
            "model_name": self.model_name,
            "model_dir": self.model_dir,
            "gpu_id": props.get("gpu_id"),
            "batch_size": int(props.get("batch_size") or 1),
            "model_config": self.model_config,
            "model_info": self.engine.info(),
        }

    def _start_bridge(self, child: ChildSpec) -> None:
        self.bridge = Bridge(
            child,
            self.engine,
            deadline_for=self._deadline_for,
            on_chunk=self._on_chunk,
            on_generated=self._on_generated,
            refuse_generate=self._generate_refusal,
            refuse_text=self.generate_limits.text_refusal,
            trace_for=self._trace_for,
        ).start()

    def handle(self, data: list[Any], context):
        coroutine = self._serve(data, context)
        if self.asynchronous:
            return _Awaitable(coroutine)
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coroutine)

    def shutdown(self) -> None:
        if self.bridge is not None:
            self.bridge.stop()
        if self.metrics is not None:
            self.metrics.stop()
        if self.engine is not None and hasattr(self.engine, "shutdown"):
            self.engine.shutdown()
        if self.reaper is not None:
            self.reaper.close()

    # ------------------------------------------------------------ one batch

    async def _serve(self, data: list[Any], context) -> list[Any]:
        """Answer every request of the batch; never raises (a raise would fail every job TorchServe holds)."""
        arrived = time.monotonic()
        one_writer(getattr(context, "cl_socket", None))  # its frames are checked from now on
        try:
            envelope = kserve.detect(data, context)
            if envelope is None:
                requests = [incoming(row, context, index) for index, row in enumerate(data)]
                outcomes = await self._outcomes(requests, context, arrived)
                traces = [request["request_id"] for request in requests]
                replies = [respond(context, i, outcome, self.max_response_size, traces[i]) for i, outcome in enumerate(outcomes)]
                log_answers(traces, outcomes, arrived, [torchserve_request_id(context, i) for i in range(len(traces))])
            else:
                requests = kserve.requests(envelope, data)
                outcomes = await self._outcomes(requests, context, arrived) if requests else kserve.no_instances()
                replies = kserve.responses(envelope, context, outcomes, self.max_response_size)
                if self.asynchronous:
                    replies = kserve.wrap(envelope, context, replies)
        except Exception as error:
            logger.exception("tsserve: serving a batch failed")
            count = len(context.request_ids or {}) or len(data)
            replies = [
                respond(context, index, outcome)
                for index, outcome in enumerate(failures(count, 500, f"the shim failed: {type(error).__name__}: {error}"))
            ]
        return with_retirements(replies, context) if self.asynchronous else replies

    async def _outcomes(self, requests: list[dict], context, arrived: float) -> list[dict]:
        """Send the requests to Node as one handle call; its RequestOutcomes."""
        loop = asyncio.get_running_loop()
        batch_id = next(self._batch_ids)
        trace = ",".join(dict.fromkeys(r["request_id"] for r in requests if r.get("request_id"))) or trace_id(context, 0)
        self._batches[batch_id] = _Batch(context, loop, self.handle_timeout.generation_deadline(arrived), len(requests), trace)
        answer: asyncio.Future = loop.create_future()
        ticket = self.bridge.request(protocol.HANDLE, {"batch_id": batch_id, "requests": requests}, _resolver(loop, answer))
        self._batches[batch_id].ticket = ticket
        try:
            message = await asyncio.wait_for(answer, max(0.0, arrived + self.handle_timeout.seconds - time.monotonic()))
        except asyncio.TimeoutError:
            why = f"the handler did not answer within {self.handle_timeout.seconds:g} s ({self.handle_timeout.name})"
            self._end(batch_id, ticket, 504, why)
            restarted = await self._kill_if_hung()
            also = "; its process was stopped and restarted" if restarted else ""
            return failures(len(requests), 504, f"{why}{also}", trace)
        except asyncio.CancelledError:  # whoever awaited the answer is gone (the client went away)
            self._end(batch_id, ticket, 499, "the request was cancelled (its client went away)")
            raise
        finally:
            self._batches.pop(batch_id, None)
            self.bridge.end_batch(batch_id)  # generate calls the handler left running
        if self._ended.get(batch_id, (None,))[0] == 413:  # its stream went over handler.max_stream_bytes
            return failures(len(requests), 413, self._ended[batch_id][1])
        if unavailable(message):
            return failures(len(requests), 503, message["error"]["message"], trace)
        if closed(message):
            why = f"the handler process died during the request ({message['error']['message']}); it has been restarted"
            return failures(len(requests), 503, why, trace)
        if "error" in message:
            error = message["error"]
            return failures(len(requests), 500, f"handler error: {error.get('message') if isinstance(error, dict) else error}", trace)
        return message["result"]["responses"]

    def _end(self, batch_id: int, ticket, status: int, why: str) -> None:
        """A handle call's request is over before Node answered: Node cancels its handle (the stages and
        generate calls see the abort), the engine drops its rows, and its later generate calls are refused."""
        self._ended[batch_id] = (status, why)
        self._batches.pop(batch_id, None)  # from now on its generate calls are refused, its stream chunks dropped
        while len(self._ended) > REMEMBERED_ENDINGS:
            self._ended.popitem(last=False)
        self.bridge.end_batch(batch_id, ticket, why)

    async def _kill_if_hung(self) -> bool:
        """After a request ran out of time: a child that does not answer a ping is killed (the bridge restarts it)."""
        loop = asyncio.get_running_loop()
        pong: asyncio.Future = loop.create_future()
        self.bridge.request(protocol.PING, {"payload": "alive?"}, _resolver(loop, pong))
        try:
            message = await asyncio.wait_for(pong, PING_TIMEOUT_S)
            return closed(message)
        except asyncio.TimeoutError:
            hung = self.bridge.child_pid
            self.bridge.kill_child()
            await self._replaced(hung)
            return True

    async def _replaced(self, pid: int | None) -> None:
        """Until the bridge serves a new child in place of ``pid`` (or RESTART_WAIT_S went by): the 504 that says
        the process was restarted goes out then, and the client's next request reaches the new child, not the
        killed one (written to the dead child's pipe, it was a 503)."""
        deadline = time.monotonic() + RESTART_WAIT_S
        while self.bridge.child_pid == pid and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    # ------------------------------------------------------------ called on the bridge thread

    def _deadline_for(self, batch_id: int | None):
        batch = self._batches.get(batch_id) if batch_id is not None else None
        if batch is not None:
            return batch.deadline
        return self.handle_timeout.generation_deadline(time.monotonic())

    def _trace_for(self, batch_id: int | None) -> str | None:
        batch = self._batches.get(batch_id) if batch_id is not None else None
        return batch.trace if batch is not None else None

    def _generate_refusal(self, batch_id: int | None, requests: list):
        """Why a generate call is refused before any work: a message (400), (status, message) for one whose request
        is over (it would otherwise run on with a fresh deadline, for nobody), or None."""
        batch = self._batches.get(batch_id) if batch_id is not None else None
        if batch_id is not None and batch is None:
            status, why = self._ended.get(batch_id, (409, "it was answered already"))
            return status, f"generate refused: the request it serves is over ({why})"
        refusal = self.generate_limits.refusal(requests, batch.requests if batch is not None else 1)
        # Its message begins with the field it is about ("n: ...", "prompt.2: ...").
        return None if refusal is None else (400, refusal, refusal.split(":", 1)[0])

    def _on_chunk(self, params: dict) -> None:
        """Send a stream chunk; past handler.max_stream_bytes, end the handle call instead (a client that does not
        read would otherwise have the frontend buffer its whole stream)."""
        batch_id = params.get("batch_id")
        batch = self._batches.get(batch_id)
        if batch is None or batch.streamed_bytes > self.max_stream_bytes:
            return
        batch.streamed_bytes += body_bytes(chunk_body(params))
        if batch.streamed_bytes > self.max_stream_bytes:
            over = stream_over(batch.streamed_bytes, self.max_stream_bytes)["message"]
            batch.loop.call_soon_threadsafe(lambda: batch_id in self._batches and self._end(batch_id, batch.ticket, 413, over))
            return
        batch.loop.call_soon_threadsafe(send_chunk, batch.context, params, self.max_response_size)

    def _on_generated(self, batch_id: int | None, outcomes: list, stages: list[str]) -> None:
        report_generated(self.engine.stats, self.model_name, outcomes, stages)


def incoming(row: Any, context, index: int) -> dict:
    """One TorchServe row as the IncomingRequest Node gets: its body, sub-path and trace id."""
    request = with_url_path(decode_body(row, decoded_by_torchserve(context, index)), context, index)
    trace = trace_id(context, index)
    problem = header_problem(context, index)
    if problem:
        logger.warning("tsserve: %s", tagged(trace, f"{problem}: TorchServe's request id is used instead"))
    return {**request, "request_id": trace}


def log_answers(traces: list[str], outcomes: list[dict], arrived: float, job_ids: list | None = None) -> None:
    """One line per request: how it was answered and when (what `tsserve logs --request` ends with). It names
    TorchServe's own request id (``job_ids``) where the trace id is the client's: the frontend's lines know only that."""
    took_ms = (time.monotonic() - arrived) * 1000
    for index, (trace, outcome) in enumerate(zip(traces, outcomes)):
        status = 200 if outcome.get("ok") else outcome.get("status", 500)
        job = job_ids[index] if job_ids and index < len(job_ids) else None
        also = f" (TorchServe request {job})" if job and job != trace else ""
        why = "" if outcome.get("ok") else f": {outcome.get('message', '')}"
        logger.info("tsserve: %s", tagged(trace, f"answered {status} after {took_ms:.0f} ms{also}{why}"))


def _resolver(loop: asyncio.AbstractEventLoop, future: asyncio.Future):
    """A callback for another thread that settles ``future`` on its loop (a late answer for a loop that is
    closed, whose caller is long gone, is dropped)."""

    def settle(message) -> None:
        try:
            loop.call_soon_threadsafe(lambda: future.done() or future.set_result(message))
        except RuntimeError:  # the loop is closed
            pass

    return settle


def cpu_threads(configured: int | None, *, on_cpu: bool, environ=os.environ, cpus: int | None = None) -> int | None:
    """torch's intra-op threads for this worker (None: leave torch's choice): ``handler.cpu_threads``; else, on a
    CPU worker without $OMP_NUM_THREADS, every CPU the worker may run on but one.

    torch's own choice is every core, and its OpenMP team spin-waits at the end of every op: all its threads
    must be running at once. The serving stack shares those cores (the Node child, the bridge and TorchServe's
    frontend work at every streamed token; other workers and processes on the host), so one of the team is
    often descheduled and the others spin until it is back. A decode step of SmolLM2 on 2 shared cores then took
    2 s instead of 0.13 (92 % of the worker's CPU in libgomp's barrier): 16 requests of 64 tokens ran past
    TorchServe's timeout. With a CPU left over, a busy neighbour slows the team down instead of stopping it."""
    if configured:
        return int(configured)
    if not on_cpu or environ.get("OMP_NUM_THREADS"):
        return None
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cpus - 1)


def _set_cpu_threads(threads: int | None) -> None:
    """Several workers on few cores each want few torch threads; the config says how many (cpu_threads)."""
    if threads:
        import torch

        torch.set_num_threads(int(threads))
        logger.info("tsserve: %d torch intra-op thread%s", threads, "" if threads == 1 else "s")

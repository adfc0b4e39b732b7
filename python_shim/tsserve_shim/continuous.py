"""The shim's request path under continuous batching (model-config `asyncCommunication: true`).

TorchServe's worker then reads requests on its own thread and awaits the
handler's `handle` for each one as it arrives (ts/async_service.py), so many
requests are in flight at once. Each is sent to the Node child as its own
`handle` call through the AsyncBridge; the handler's generate calls go to the
iteration-level Scheduler, which joins their rows to the running decode batch
at the next step. A request's answer goes back as soon as its rows are done.
TorchServe 0.12's frontend (RestJob) answers with a full HTTP response only
when the reply has no `ts_stream_next` header, so none is set on a request
that did not stream; a streamed one ends with "false" (set by TorchServe).

Multi-step handlers (AgentInstruct's two stages) work unchanged: each of
their generate calls is admitted to the running batch like any other.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any, List

from . import protocol
from .async_bridge import AsyncBridge
from .scheduler import Scheduler

logger = logging.getLogger(__name__)


def continuous_batching(model_config: dict) -> bool:
    """The model config chooses it: TorchServe's own `asyncCommunication: true`."""
    return bool(model_config.get("asyncCommunication"))


class ContinuousMode:
    def __init__(self, handler) -> None:
        self.handler = handler
        self.scheduler = Scheduler(handler.engine)
        self.bridge: AsyncBridge | None = None
        self._ids = itertools.count(1)
        self._streams: dict[int, tuple[Any, asyncio.AbstractEventLoop]] = {}

    def connect(self) -> "ContinuousMode":
        """Hand the (started, handshaken) Node child's channel to a bridge thread."""
        handler = self.handler
        from .handler import generation_deadline  # the handler module imports this one

        handler.peer.on_notification(protocol.STREAM_CHUNK, self._send_chunk)
        self.bridge = AsyncBridge(
            handler.peer, self.scheduler, lambda now: generation_deadline(handler.deadline_s, handler.deadline_name, now)
        ).start()
        return self

    def handle(self, data: List[Any], context):
        """TorchServe awaits what this returns (the entry point must be a coroutine in this mode)."""
        return self._handle(data, context)

    async def _handle(self, data: List[Any], context) -> List[Any]:
        from .handler import decode_body, with_url_path

        handler = self.handler
        if self.bridge is None or not self.bridge.alive:
            self._restart()
        loop = asyncio.get_running_loop()
        answer: asyncio.Future = loop.create_future()
        batch_id = next(self._ids)
        requests = [with_url_path(decode_body(row), context, index) for index, row in enumerate(data)]
        self._streams[batch_id] = (context, loop)

        def on_answer(message: dict) -> None:
            loop.call_soon_threadsafe(lambda: answer.done() or answer.set_result(message))

        self.bridge.request(protocol.HANDLE, {"batch_id": batch_id, "requests": requests}, on_answer)
        try:
            message = await asyncio.wait_for(answer, handler.deadline_s)
            if "error" in message:
                error = message["error"]
                outcomes = handler._fail_all(len(data), 500, f"handler error: {error.get('message') if isinstance(error, dict) else error}")
            else:
                outcomes = message["result"]["responses"]
        except asyncio.TimeoutError:
            outcomes = handler._fail_all(len(data), 504, f"the handler did not answer within {handler.deadline_s:g} s")
        finally:
            self._streams.pop(batch_id, None)
        # No ts_stream_next here: with it the frontend sends a chunk without a response head.
        # A streamed request already carries "true", which TorchServe turns into "false" on this last reply.
        return [handler._respond(context, index, outcome) for index, outcome in enumerate(outcomes)]

    def _restart(self) -> None:
        logger.error("tsserve: the handler process's channel closed; restarting it")
        self.handler._replace_child()
        self.connect()

    def _send_chunk(self, params: dict) -> None:
        """On the bridge thread: pass a stream chunk to the request's event loop, which writes it to TorchServe."""
        target = self._streams.get(params.get("batch_id"))
        if target is None:
            return
        context, loop = target
        loop.call_soon_threadsafe(self.handler._send_chunk_to, context, params)

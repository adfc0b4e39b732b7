"""The shim under asyncCommunication (continuous batching), driven as TorchServe's async worker drives it:
handle returns a coroutine per request, many in flight on one event loop; real bundle, tiny model."""

from __future__ import annotations

import asyncio
import os
import time

import orjson
import pytest
from shim_harness import make_context, open_shim


@pytest.fixture(scope="module")
def shim(tmp_path_factory, tiny_model_dir):
    opened = open_shim(tmp_path_factory, tiny_model_dir, batch_size=1, async_communication=True)
    yield opened
    opened[0].shutdown()


async def ask(shim, body: dict, finished: list, name: str):
    handler, model_dir, config = shim
    context = make_context(model_dir, config, 1)
    replies = await handler.handle([{"body": orjson.dumps(body)}], context)
    assert len(replies) == 1
    answer = replies[0]
    finished.append(name)
    assert "ts_stream_next" not in context.get_response_headers(0)  # else TorchServe 0.12 sends no response head
    return context.get_response_status(0)[0] or 200, orjson.loads(answer)


def test_a_short_request_sent_while_a_long_one_decodes_finishes_first(shim):
    long_body = {"prompt": "Tell me a story", "max_tokens": 200, "temperature": 0}
    short_body = {"prompt": "Hi", "max_tokens": 4, "temperature": 0}

    async def scenario():
        finished: list[str] = []
        alone_short = await ask(shim, short_body, [], "alone")
        long_task = asyncio.create_task(ask(shim, long_body, finished, "long"))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        short = await ask(shim, short_body, finished, "short")
        short_time = time.monotonic() - started
        long = await long_task
        return finished, alone_short, short, long, short_time

    finished, alone_short, short, long, _short_time = asyncio.run(scenario())
    assert finished == ["short", "long"]
    assert short[0] == 200 and long[0] == 200
    assert short[1]["choices"][0]["text"] == alone_short[1]["choices"][0]["text"]
    assert long[1]["usage"]["completion_tokens"] == 200 or long[1]["choices"][0]["finish_reason"] == "stop"


def test_a_cpu_worker_leaves_a_cpu_to_the_serving_stack_unless_told():
    """torch's default team (every core) spin-waits at every op: on cores shared with the Node child, the frontend
    and other processes, a decode step took 2 s instead of 0.13 and 16 requests ran past TorchServe's timeout."""
    from tsserve_shim.worker.handler import cpu_threads

    assert cpu_threads(None, on_cpu=True, environ={}, cpus=2) == 1
    assert cpu_threads(None, on_cpu=True, environ={}, cpus=16) == 15
    assert cpu_threads(None, on_cpu=True, environ={}, cpus=1) == 1
    assert cpu_threads(3, on_cpu=True, environ={"OMP_NUM_THREADS": "8"}, cpus=2) == 3  # handler.cpu_threads wins
    assert cpu_threads(None, on_cpu=True, environ={"OMP_NUM_THREADS": "8"}, cpus=16) is None  # torch reads it itself
    assert cpu_threads(None, on_cpu=False, environ={}, cpus=16) is None  # a GPU worker keeps torch's choice


def test_initialize_gives_torch_the_cpu_worker_threads(shim):
    import torch

    if os.environ.get("OMP_NUM_THREADS"):
        pytest.skip("$OMP_NUM_THREADS sets torch's threads")
    assert torch.get_num_threads() == max(1, len(os.sched_getaffinity(0)) - 1)

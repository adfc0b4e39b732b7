"""A dead vLLM engine core is not restarted by vLLM: its requests answer 503 and the worker exits, so that
TorchServe starts a new one (a fake AsyncLLM whose generate raises what vLLM raises then)."""

from __future__ import annotations

import asyncio

from protocol_values import make_request

from tsserve_shim.engine.contract import GenerateRequest
from tsserve_shim.engine.vllm import engine as vllm_engine
from tsserve_shim.engine.vllm.engine import VllmEngine


class DeadLLM:
    def generate(self, prompt, params, request_id):
        from vllm.v1.engine.exceptions import EngineDeadError

        async def stream():
            raise EngineDeadError()
            yield  # an async generator, as AsyncLLM.generate is

        return stream()


def test_a_dead_engine_answers_503_and_exits_the_worker_once(monkeypatch):
    exits: list[float] = []
    monkeypatch.setattr(vllm_engine, "EXIT_AFTER_ENGINE_DEATH_S", 0.01)
    monkeypatch.setattr(vllm_engine, "_exit_worker", lambda: exits.append(1))
    engine = object.__new__(VllmEngine)
    engine.llm, engine._dying, engine._request_ids = DeadLLM(), False, iter(range(1, 100))

    async def two_requests():
        engine._loop = asyncio.get_running_loop()
        answers = [await engine._run(GenerateRequest.from_params(make_request("Hello")), [1, 2, 3], [_row()]) for _ in range(2)]
        await asyncio.sleep(0.05)
        return answers

    answers = asyncio.run(two_requests())
    assert [a["status"] for a in answers] == [503, 503] and "worker is restarting" in answers[0]["message"]
    assert exits == [1]


def _row():
    class Row:
        deadline = None
        done = False
        finish_reason = None

    return Row()

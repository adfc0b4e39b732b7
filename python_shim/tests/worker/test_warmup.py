"""A handler whose initialize calls tokenize, generate and detokenize (a warm-up) loads and serves
(issue 28: the generate's answer used to wait for the bridge loop, which waited for the handshake,
and the worker failed to load after 60 s). Real shim, real bundle, tiny model."""

from __future__ import annotations

import os
import time

from bundles import ROOT, bundle
from shim_harness import ask, make_context


def test_a_handler_whose_initialize_generates_loads_and_serves(tmp_path_factory, tiny_model_dir, engine):
    from tsserve_shim.handler import TsserveHandler

    model_dir = str(tmp_path_factory.mktemp("warmup"))
    bundle(os.path.join(ROOT, "test", "fixtures", "handlers", "warmup-handler.ts"), model_dir)
    config = {"batchSize": 1, "responseTimeout": 120, "handler": {"model_path": str(tiny_model_dir), "dtype": "float32"}}
    handler = TsserveHandler()
    started = time.monotonic()
    handler.initialize(make_context(model_dir, config, 1))
    try:
        assert time.monotonic() - started < 30
        [(status, body)] = ask((handler, model_dir, config), {})
        assert status == 200, body
        expected_text = engine.generate(
            [
                {
                    "prompt": "Hello",
                    "max_tokens": 3,
                    "temperature": 0.0,
                    "top_p": 1.0,
                    "top_k": 0,
                    "repetition_penalty": 1.0,
                    "seed": 0,
                    "stop": [],
                    "logprobs": 0,
                    "num_sequences": 1,
                    "echo": False,
                    "stream": False,
                }
            ]
        )[0]["sequences"][0]["text"]
        assert body["text"] == expected_text
        assert body["ids"] == engine.tokenize(["Hello there"], add_special_tokens=False)
        assert body["detokenized"] == ["Hello there"]
        # The bridge serves on after the handshake: a restarted child warms up again on the bridge thread.
        old_pid = handler.bridge.child_pid
        handler.bridge.kill_child()
        deadline = time.monotonic() + 30
        while (handler.bridge.child_pid == old_pid or handler.bridge.start_failure is not None) and time.monotonic() < deadline:
            time.sleep(0.1)
        [(status, body)] = ask((handler, model_dir, config), {})
        assert status == 200 and body["text"] == expected_text
        assert handler.bridge.restarts == 1
    finally:
        handler.shutdown()

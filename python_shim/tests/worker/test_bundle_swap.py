"""A rebuilt handler bundle goes live without reloading the model (`tsserve dev`, `register --replace`):
the next handle call that finds the Node child idle starts a child on the new bundle, and the engine,
the worker and its loaded weights stay as they were."""

import os

import pytest
from shim_harness import ask, open_shim

ECHO = {"prompt": "Alan Turing was a ", "max_tokens": 1, "temperature": 0, "echo": True}


@pytest.fixture(scope="module")
def shim(tmp_path_factory, tiny_model_dir):
    handler, model_dir, config = open_shim(tmp_path_factory, tiny_model_dir, batch_size=1)
    yield handler, model_dir, config
    handler.bridge.stop()


def replace_bundle(model_dir: str, old: str, new: str) -> None:
    """Writes the edited bundle beside the old one and renames it over it, as `tsserve dev` does."""
    path = os.path.join(model_dir, "handler.mjs")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert old in text
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text.replace(old, new))
    os.replace(path + ".tmp", path)


def test_a_rebuilt_bundle_serves_the_next_request_with_the_model_still_loaded(shim):
    handler, model_dir, _ = shim
    [(status, body)] = ask(shim, ECHO)
    assert status == 200 and body["choices"][0]["text"].startswith("[INST]")
    engine, pid, restarts = handler.engine, handler.bridge.child_pid, handler.bridge.restarts

    replace_bundle(model_dir, 'LLAMA2_RAW_PROMPT_PREFIX = "[INST]', 'LLAMA2_RAW_PROMPT_PREFIX = "[INST-EDITED]')
    [(status, body)] = ask(shim, ECHO)
    assert status == 200
    assert body["choices"][0]["text"].startswith("[INST-EDITED]")
    assert handler.engine is engine
    assert handler.bridge.child_pid != pid
    assert handler.bridge.restarts == restarts  # a swap, not a crash and restart

    # Unchanged file: the same child serves on.
    pid = handler.bridge.child_pid
    [(status, _)] = ask(shim, ECHO)
    assert status == 200 and handler.bridge.child_pid == pid


def test_a_bundle_that_cannot_start_leaves_the_running_one_serving(shim):
    handler, model_dir, _ = shim
    pid = handler.bridge.child_pid
    path = os.path.join(model_dir, "handler.mjs")
    with open(path, encoding="utf-8") as f:
        good = f.read()
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("this is not JavaScript (\n" + good)
    os.replace(path + ".tmp", path)
    [(status, _)] = ask(shim, ECHO)
    assert status == 200
    assert handler.bridge.child_pid == pid

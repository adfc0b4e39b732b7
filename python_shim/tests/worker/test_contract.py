"""Contract: the real shim (TsserveHandler) against the real bundled Llama-2
chat handler and the tiny model, driven through TorchServe's own Context,
without the TorchServe frontend."""

import os
import time

import pytest
import torch
from seed_request import SEED_REQUEST
from shim_harness import ask, open_shim
from transformers import AutoModelForCausalLM, AutoTokenizer

LLAMA2_RAW_PREFIX = "[INST] <<SYS>>\n\n<</SYS>>\n\n"


@pytest.fixture(scope="module")
def shim(tmp_path_factory, tiny_model_dir):
    opened = open_shim(tmp_path_factory, tiny_model_dir)
    yield opened
    opened[0].shutdown()


def test_the_seed_example_request_is_answered_in_the_seed_shape(shim):
    [(status, body)] = ask(shim, SEED_REQUEST)
    assert status == 200
    choice = body["choices"][0]
    assert isinstance(choice["text"], str) and choice["index"] == 0
    assert choice["finish_reason"] in ("stop", "length")
    assert set(choice["logprobs"]) >= {"tokens", "token_logprobs", "top_logprobs"}
    assert isinstance(body["raw_compute_time"], float)


def test_greedy_output_is_identical_across_runs(shim):
    request = {"prompt": "The capital of France is", "temperature": 0, "max_tokens": 12}
    assert ask(shim, request)[0][1]["choices"][0]["text"] == ask(shim, request)[0][1]["choices"][0]["text"]


def test_the_same_seed_gives_the_same_sample_and_another_seed_another(shim):
    request = {"prompt": "Once upon a time", "temperature": 1.0, "top_k": 0, "top_p": 1, "max_tokens": 16, "seed": 7}
    first = ask(shim, request)[0][1]["choices"][0]["text"]
    assert ask(shim, request)[0][1]["choices"][0]["text"] == first
    assert ask(shim, dict(request, seed=8))[0][1]["choices"][0]["text"] != first


def test_token_logprobs_match_an_independent_forward_pass(shim, tiny_model_dir):
    """Greedy decoding redone here with plain forward passes: same tokens, same log-softmax values."""
    [(_, body)] = ask(shim, {"prompt": "Alan Turing was a", "temperature": 0, "max_tokens": 6, "logprobs": 3})
    logprobs = body["choices"][0]["logprobs"]
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    ids = tokenizer(LLAMA2_RAW_PREFIX + "Alan Turing was a")["input_ids"]
    assert len(logprobs["token_logprobs"]) == 6
    for i in range(6):
        with torch.no_grad():
            reference = torch.log_softmax(model(torch.tensor([ids])).logits[0, -1].float(), dim=-1)
        chosen = int(reference.argmax())
        assert logprobs["token_logprobs"][i] == pytest.approx(reference[chosen].item(), abs=1e-4), f"token {i}"
        assert logprobs["tokens"][i] == tokenizer.convert_ids_to_tokens(chosen).replace("\u2581", " ")
        top = logprobs["top_logprobs"][i]
        assert sorted(top.values(), reverse=True) == pytest.approx(reference.topk(3).values.tolist(), abs=1e-4)
        ids.append(chosen)


@pytest.mark.parametrize("temperature", [0, 0.9])
def test_stop_sequences_cut_the_text_at_every_temperature(shim, temperature):
    base = {"prompt": "Alan Turing was a", "temperature": temperature, "seed": 3, "max_tokens": 24}
    [(_, free)] = ask(shim, base)
    text = free["choices"][0]["text"]
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    assert stop, text
    [(_, cut)] = ask(shim, dict(base, stop=[stop]))
    assert cut["choices"][0]["text"] == text[: text.index(stop)]
    assert cut["choices"][0]["finish_reason"] == "stop"


def test_one_invalid_request_in_a_batch_is_refused_while_the_others_succeed(shim):
    answers = ask(
        shim,
        {"prompt": "a", "max_tokens": 2, "temperature": 0},
        {"prompt": "b", "max_tokens": -1},
        b"{not json",
        {"prompt": "c", "max_tokens": 2, "temperature": 0},
    )
    assert [status for status, _ in answers] == [200, 400, 400, 200]
    assert answers[1][1]["error"]["field"] == "max_tokens"
    assert "max_tokens" in answers[1][1]["error"]["message"]
    assert "JSON" in answers[2][1]["error"]["message"]


def test_a_handler_process_killed_between_batches_is_replaced_before_the_next(shim):
    handler = shim[0]
    old, restarts = handler.bridge.child_pid, handler.bridge.restarts
    os.kill(old, 9)
    deadline = time.monotonic() + 30
    while handler.bridge.restarts == restarts and time.monotonic() < deadline:
        time.sleep(0.05)
    [(status, body)] = ask(shim, {"prompt": "x", "max_tokens": 1})
    assert status == 200, body
    assert handler.bridge.child_pid != old

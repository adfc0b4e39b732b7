"""A GenerateRequest with ``prompt_token_ids``: the model gets those ids as they are, never a re-tokenization of the text."""

from __future__ import annotations

import pytest
import torch
from protocol_values import make_request


def forward_logprobs(engine, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        logits = engine.runner.model(input_ids=torch.tensor([ids])).logits[0].float()
    return torch.log_softmax(logits, dim=-1)


def id_request(engine, ids: list[int], **kw) -> dict:
    """The request Node sends for a token-id prompt: the ids, and their text (special tokens kept) as the prompt."""
    return make_request(engine.detokenize([ids], False)[0], prompt_token_ids=ids, **kw)


def test_ids_that_tokenizing_the_text_would_not_give_are_kept(engine):
    # " Hello" spelled one piece per character: its text tokenizes to other, fewer ids.
    ids = engine.encode_prompt("")[:1] + engine.tokenizer.convert_tokens_to_ids(["▁H", "e", "l", "l", "o"])
    assert engine.tokenizer.unk_token_id not in ids
    request = id_request(engine, ids, echo=True, max_tokens=0, logprobs=1)
    assert engine.encode_prompt(request["prompt"]) != ids
    [out] = engine.generate([request])
    assert out["ok"], out
    assert out["prompt"]["token_ids"] == ids and out["prompt_tokens"] == len(ids)
    lp = forward_logprobs(engine, ids)
    assert out["prompt"]["token_logprobs"][0] is None
    for i in range(1, len(ids)):
        assert out["prompt"]["token_logprobs"][i] == pytest.approx(lp[i - 1, ids[i]].item(), abs=1e-4)


def test_ids_of_the_text_generate_what_the_text_does(engine):
    text = "Q: What is the capital of France?\nA:"
    ids = engine.encode_prompt(text)
    by_ids, by_text = engine.generate([id_request(engine, ids, max_tokens=6), make_request(text, max_tokens=6)])
    assert by_ids["sequences"][0]["logprobs"]["token_ids"] == by_text["sequences"][0]["logprobs"]["token_ids"]
    assert by_ids["sequences"][0]["text"] == by_text["sequences"][0]["text"]


def test_too_many_ids_for_the_context_is_a_400(engine):
    [out] = engine.generate([id_request(engine, [5] * (engine.context_length + 1), max_tokens=0)])
    assert out["ok"] is False and out["status"] == 400 and str(engine.context_length) in out["message"]


def test_the_request_matches_the_protocol_schema(engine):
    from protocol_check import check_params

    from tsserve_shim.bridge import protocol

    check_params(protocol.GENERATE, {"call_id": 1, "requests": [id_request(engine, [1, 415, 3186], max_tokens=1)]})


def test_an_echo_request_reports_the_eos_it_ends_on(engine):
    """lm-eval scores with echo and max_tokens 1 and drops the last token: an EOS there must be reported."""
    text = "The quick brown fox"
    ids = engine.encode_prompt(text)
    nxt = int(forward_logprobs(engine, ids)[-1].argmax())
    saved = engine.eos_ids
    engine.eos_ids = {nxt}  # the greedy next token ends the sequence
    try:
        echo, plain = engine.generate([id_request(engine, ids, echo=True, max_tokens=1, logprobs=1), make_request(text, max_tokens=1)])
    finally:
        engine.eos_ids = saved
    [seq] = echo["sequences"]
    assert seq["finish_reason"] == "stop" and seq["text"] == ""
    assert seq["logprobs"]["token_ids"] == [nxt] and seq["logprobs"]["tokens"] == [""]
    assert seq["logprobs"]["token_logprobs"][0] == pytest.approx(forward_logprobs(engine, ids)[-1, nxt].item(), abs=1e-4)
    assert plain["sequences"][0]["logprobs"]["token_ids"] == []  # not scoring: EOS stays unreported

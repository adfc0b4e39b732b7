"""Structured output on the vLLM engine (SmolLM2, vLLM's own structured outputs through
``sampling_params``): the same GenerateRequests and answers as the transformers engine's tests.
``vllm_engine`` is the session's shared vLLM engine (conftest.py)."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
from conftest import NESTED_SCHEMA
from protocol_values import make_request

from tsserve_shim.engine.vllm.structured import vllm_structured_outputs


def only_sequences(outcomes):
    for outcome in outcomes:
        assert outcome["ok"], outcome
    return [outcome["sequences"] for outcome in outcomes]


def test_each_kind_becomes_vllms_params():
    pytest.importorskip("vllm")
    assert vllm_structured_outputs(None) is None
    schema = vllm_structured_outputs({"json_schema": {"type": "integer"}})
    assert schema.json == {"type": "integer"}
    assert vllm_structured_outputs({"json_object": True}).json_object is True
    assert vllm_structured_outputs({"regex": "a+"}).regex == "a+"
    assert vllm_structured_outputs({"choice": ["x", "y"]}).choice == ["x", "y"]


def test_vllm_keeps_to_every_kind(vllm_engine):
    prompt = (
        "<|im_start|>user\nWhich planet is largest? A) Mars B) Jupiter C) Venus D) Earth. Answer in JSON.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    outcomes = vllm_engine.generate(
        [
            make_request(prompt, max_tokens=120, structured={"json_schema": NESTED_SCHEMA}),
            make_request(prompt, max_tokens=120, temperature=0.8, seed=7, structured={"json_schema": NESTED_SCHEMA}),
            make_request("Digits:", max_tokens=20, temperature=1.0, seed=3, num_sequences=3, structured={"regex": "[0-9]{3}-[a-c]{2}"}),
            make_request(prompt, max_tokens=10, structured={"choice": ["A", "B", "C", "D"]}),
            make_request(
                "Write JSON:",
                max_tokens=5,
                structured={
                    "json_schema": {"type": "object", "properties": {"text": {"type": "string", "minLength": 30}}, "required": ["text"]}
                },
            ),
        ]
    )
    nested, sampled, regex, choice, cut = only_sequences(outcomes)
    for [seq] in (nested, sampled):
        assert seq["finish_reason"] == "stop", seq["text"]
        jsonschema.validate(json.loads(seq["text"]), NESTED_SCHEMA)
    assert [bool(re.fullmatch("[0-9]{3}-[a-c]{2}", seq["text"])) for seq in regex] == [True] * 3
    assert choice[0]["text"] in "ABCD" and choice[0]["finish_reason"] == "stop"
    assert cut[0]["finish_reason"] == "length" and cut[0]["text"].startswith("{")
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut[0]["text"])


def test_a_bad_schema_is_a_400_of_its_own_request(vllm_engine):
    bad = make_request("x", structured={"json_schema": {"type": "integer", "minimum": 5, "maximum": 1}})
    outcomes = vllm_engine.generate([bad, make_request("Hello", max_tokens=3)])
    assert outcomes[0]["ok"] is False and outcomes[0]["status"] == 400, outcomes[0]
    assert outcomes[1]["ok"]

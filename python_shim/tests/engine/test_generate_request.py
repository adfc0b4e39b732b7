"""The typed GenerateRequest (engine/contract.py) against the protocol's exported JSON Schema: the same
fields, required where src/protocol/messages.ts makes them required, parsed once from a generate call's params."""

from __future__ import annotations

import dataclasses

import pytest
from protocol_values import make_request

from tsserve_shim.bridge.protocol import schema
from tsserve_shim.engine.contract import GenerateRequest, Malformed, MalformedRequest, generate_requests


def request_schema() -> dict:
    return schema()["methods"]["generate"]["params"]["properties"]["requests"]["items"]


def test_the_fields_and_the_required_ones_are_the_protocol_s():
    fields = dataclasses.fields(GenerateRequest)
    required = {f.name for f in fields if f.default is dataclasses.MISSING}
    assert {f.name for f in fields} == set(request_schema()["properties"])
    assert required == set(request_schema()["required"])


def test_a_request_is_parsed_once_and_typed_ones_pass_through():
    raw = make_request("Hi", stop=["\n"], prompt_token_ids=[1, 2], literal_spans=[[0, 2]], structured={"regex": "a+"})
    [parsed] = generate_requests([raw])
    assert parsed.stop == ("\n",) and parsed.prompt_token_ids == (1, 2) and parsed.literal_spans == ((0, 2),)
    assert parsed.structured == {"regex": "a+"} and parsed.temperature == 0.0 and parsed.seed is None
    assert generate_requests([parsed])[0] is parsed


def test_a_malformed_request_is_an_error_naming_what_is_wrong():
    with pytest.raises(MalformedRequest, match="temperature: missing") as missing:
        GenerateRequest.from_params({k: v for k, v in make_request("Hi").items() if k != "temperature"})
    assert missing.value.field == "temperature"
    with pytest.raises(MalformedRequest, match="temperature") as wrong_type:
        GenerateRequest.from_params(make_request("Hi", temperature=None))
    assert wrong_type.value.field == "temperature" and isinstance(wrong_type.value.__cause__, TypeError)
    with pytest.raises(MalformedRequest, match="max_tokens"):
        GenerateRequest.from_params(make_request("Hi", max_tokens="many"))
    with pytest.raises(MalformedRequest, match="request"):
        GenerateRequest.from_params(["Hi"])


def test_a_call_s_malformed_request_is_its_own_400_naming_the_field_and_the_others_are_parsed():
    good, bad = generate_requests([make_request("Hi"), make_request("Hi", num_sequences="two")])
    assert isinstance(good, GenerateRequest) and isinstance(bad, Malformed)
    outcome = bad.outcome()
    assert outcome["status"] == 400 and outcome["field"] == "num_sequences" and "num_sequences" in outcome["message"]
    assert generate_requests([bad])[0] is bad

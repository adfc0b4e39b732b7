"""Structured output on the transformers engine (grammar.py): the text stays in the grammar's
language, a bad grammar is a 400 of its own request, a row cut by max_tokens says "length"."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
from conftest import NESTED_SCHEMA
from protocol_values import make_request

from tsserve_shim.engine.common.structured import StructureError, structure_kind
from tsserve_shim.engine.transformers.grammar import choice_grammar, error_reason


def sequences(engine, *requests):
    outcomes = engine.generate(list(requests))
    for outcome in outcomes:
        assert outcome["ok"], outcome
    return [outcome["sequences"] for outcome in outcomes]


def test_a_choice_is_one_of_its_strings(engine):
    choices = ["yes", "no", "maybe not"]
    [[seq]] = sequences(engine, make_request("Is it?", max_tokens=20, structured={"choice": choices}))
    assert seq["text"] in choices and seq["finish_reason"] == "stop"


def test_a_regex_holds_for_every_sampled_sequence(engine):
    request = make_request("Digits:", max_tokens=20, temperature=1.0, seed=3, num_sequences=4, structured={"regex": "[0-9]{3}-[a-c]{2}"})
    [seqs] = sequences(engine, request)
    assert len(seqs) == 4
    for seq in seqs:
        assert re.fullmatch("[0-9]{3}-[a-c]{2}", seq["text"]) and seq["finish_reason"] == "stop"


def test_constrained_and_free_rows_share_a_batch(engine):
    free = make_request("Alan Turing was a", max_tokens=8)
    [[alone]] = sequences(engine, free)
    [[mixed], [chosen]] = sequences(engine, free, make_request("Pick", max_tokens=8, structured={"choice": ["left", "right"]}))
    assert mixed["text"] == alone["text"]
    assert chosen["text"] in ("left", "right")


def test_logprobs_are_the_models_own(engine):
    [[seq]] = sequences(engine, make_request("Pick", max_tokens=8, logprobs=2, structured={"choice": ["left", "right"]}))
    assert all(lp is not None and lp <= 0 for lp in seq["logprobs"]["token_logprobs"])


def test_a_bad_schema_is_a_400_of_its_own_request(engine):
    bad = make_request("x", structured={"json_schema": {"type": "integer", "minimum": 5, "maximum": 1}})
    bad_regex = make_request("x", structured={"regex": "a["})
    outcomes = engine.generate([bad, make_request("Hello", max_tokens=3), bad_regex])
    assert outcomes[0] == {"ok": False, "status": 400, "message": "structured.json_schema: Invalid range: minimum greater than maximum"}
    assert outcomes[1]["ok"]
    assert outcomes[2]["status"] == 400 and outcomes[2]["message"].startswith("structured.regex: Regex parsing error")


def test_too_few_tokens_is_length_with_a_prefix(smollm2_engine):
    schema = {"type": "object", "properties": {"text": {"type": "string", "minLength": 30}}, "required": ["text"]}
    [[seq]] = sequences(smollm2_engine, make_request("Write JSON:", max_tokens=5, structured={"json_schema": schema}))
    assert seq["finish_reason"] == "length"
    assert seq["text"].startswith("{")
    with pytest.raises(json.JSONDecodeError):
        json.loads(seq["text"])


def test_nested_schema_on_smollm2_parses_and_validates(smollm2_engine):
    prompts = [
        "<|im_start|>user\nWhich planet is largest? A) Mars B) Jupiter C) Venus D) Earth. Answer in JSON.<|im_end|>\n"
        "<|im_start|>assistant\n",
        "<|im_start|>user\nIs water wet? Answer in JSON with reasons.<|im_end|>\n<|im_start|>assistant\n",
    ]
    requests = [make_request(p, max_tokens=120, structured={"json_schema": NESTED_SCHEMA}) for p in prompts]
    requests.append(make_request(prompts[0], max_tokens=120, temperature=0.8, seed=7, structured={"json_schema": NESTED_SCHEMA}))
    for [seq] in sequences(smollm2_engine, *requests):
        assert seq["finish_reason"] == "stop", seq["text"]
        jsonschema.validate(json.loads(seq["text"]), NESTED_SCHEMA)


def test_json_object_is_an_object(smollm2_engine):
    [[seq]] = sequences(smollm2_engine, make_request("Give me JSON:", max_tokens=60, structured={"json_object": True}))
    if seq["finish_reason"] == "stop":
        assert isinstance(json.loads(seq["text"]), dict)
    else:
        assert seq["text"].startswith("{")


def test_structure_kind_wants_exactly_one():
    assert structure_kind({"regex": "a"}) == "regex"
    with pytest.raises(StructureError, match="exactly one of"):
        structure_kind({"regex": "a", "choice": ["a"]})


def test_choice_grammar_quotes_its_strings():
    assert choice_grammar(['a "b"', "é"]) == 'root ::= "a \\"b\\"" | "é"'


def test_error_reason_drops_the_source_position():
    assert error_reason(RuntimeError('[20:37:55] /project/cpp/x.cc:4944: Unsupported type "foo"\n')) == 'Unsupported type "foo"'


def test_properties_in_the_schemas_order_and_whitespace_capped(engine):
    from tsserve_shim.engine.transformers.grammar import MAX_WHITESPACE

    schema = {"type": "object", "properties": {"b": {"type": "integer"}, "a": {"type": "integer"}}, "required": ["b", "a"]}
    grammar = engine.runner.grammars.compile({"json_schema": schema})
    import xgrammar

    def accepts(text):
        matcher = xgrammar.GrammarMatcher(grammar)
        return matcher.accept_string(text) and matcher.is_completed()

    assert accepts('{\n    "b": 1,\n    "a": 2\n}')
    assert not accepts('{"a": 2, "b": 1}')
    assert not accepts('{"b": 1,' + "\n" * (MAX_WHITESPACE + 1) + '"a": 2}')

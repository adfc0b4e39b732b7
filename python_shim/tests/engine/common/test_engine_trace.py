"""A request's trace id in an engine tag and in the engine's own request ids (engine/contract.py)."""

from tsserve_shim.engine.contract import engine_request_id, generate_tag, tag_trace, tagged


def test_a_generate_tag_carries_its_trace_id_and_stays_one_call_s():
    tag = generate_tag(42, 7, "abc-123")
    assert tag_trace(tag) == "abc-123" and tag != generate_tag(42, 8, "abc-123")
    assert tag_trace(generate_tag(42, 7, None)) is None and tag_trace("other") is None and tag_trace(None) is None


def test_the_engine_s_request_ids_and_log_lines_name_the_trace():
    assert engine_request_id(generate_tag(1, 2, "abc"), 5) == "tsserve-abc-5"
    assert engine_request_id(None, 5) == "tsserve-5"
    assert tagged("abc", "answered 200") == "[request abc] answered 200" and tagged(None, "x") == "x"

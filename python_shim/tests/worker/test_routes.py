"""The shim's half of handler routes, with TorchServe's own Context: each row's
`url_path` header reaches Node with its request, and a reply with a content
type (server-sent events) or its own error body goes out as Node wrote it."""

import orjson
from protocol_check import check_params, check_result
from ts.context import Context, RequestProcessor

from tsserve_shim.bridge import protocol
from tsserve_shim.worker.replies import respond
from tsserve_shim.worker.requests import decode_body, with_url_path


def context_for(*headers: dict) -> Context:
    context = Context("m", "/tmp", {}, len(headers), None, "0.12.0")
    context.request_processor = [RequestProcessor(dict(h)) for h in headers]
    return context


def test_each_row_carries_its_own_url_path_and_rows_without_one_carry_none():
    context = context_for({"url_path": "v1/chat/completions"}, {"url_path": ""}, {})
    rows = [{"body": {"messages": []}}, {"body": {"prompt": "a"}}, {"body": b"{}"}]
    requests = [with_url_path(decode_body(row), context, i) for i, row in enumerate(rows)]
    assert requests == [
        {"body": {"messages": []}, "url_path": "v1/chat/completions"},
        {"body": {"prompt": "a"}},
        {"body": {}},
    ]
    check_params(protocol.HANDLE, {"batch_id": 1, "requests": requests})


def test_a_reply_with_a_content_type_is_sent_as_its_text():
    context = context_for({})
    sse = 'data: {"x": 1}\n\ndata: [DONE]\n\n'
    assert respond(context, 0, {"ok": True, "body": sse, "content_type": "text/event-stream"}) == sse
    assert context.get_response_content_type(0) == "text/event-stream"


def test_a_json_reply_and_a_default_error_are_as_before():
    context = context_for({}, {})
    assert respond(context, 0, {"ok": True, "body": {"a": 1}}) == '{"a":1}\n'
    assert context.get_response_content_type(0) == "application/json"
    reply = respond(context, 1, {"ok": False, "status": 400, "message": "n: must be ≥ 1", "field": "n"})
    assert orjson.loads(reply) == {"error": {"code": 400, "message": "n: must be ≥ 1", "field": "n"}}
    assert context.get_response_status(1) == (400, "n: must be >= 1")


def test_a_failure_with_its_own_body_sends_that_body_with_its_status():
    context = context_for({})
    own = {"error": {"message": "url_path: no route", "type": "not_found_error", "param": "url_path", "code": "not_found"}}
    reply = respond(context, 0, {"ok": False, "status": 404, "message": "url_path: no route", "body": own})
    assert orjson.loads(reply) == own
    assert context.get_response_status(0) == (404, "url_path: no route")


def test_the_schema_accepts_replies_with_a_content_type_or_an_own_error_body():
    check_result(
        protocol.HANDLE,
        {
            "responses": [
                {"ok": True, "body": "data: [DONE]\n\n", "content_type": "text/event-stream"},
                {"ok": False, "status": 404, "message": "no route", "field": "url_path", "body": {"error": {"message": "no route"}}},
            ]
        },
    )


def test_a_context_without_request_headers_gives_no_url_path():
    assert with_url_path({"body": 1}, None, 0) == {"body": 1}
    assert with_url_path({"body": 1}, Context("m", "/tmp", {}, 1, None, "0.12.0"), 0) == {"body": 1}

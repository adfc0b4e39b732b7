"""One request traced across the hops (worker/trace.py): the id the worker picks for each row, and where it
goes: the IncomingRequest Node gets, the answer's error body, the worker's log line."""

import logging

import orjson
from protocol_check import check_params
from ts.context import Context, RequestProcessor

from tsserve_shim.bridge import protocol
from tsserve_shim.worker.handler import incoming, log_answers
from tsserve_shim.worker.replies import failures, respond
from tsserve_shim.worker.trace import trace_id


def context_for(*headers: dict) -> Context:
    context = Context("m", "/tmp", {}, len(headers), None, "0.12.0")
    context.request_ids = {i: f"ts-uuid-{i}" for i in range(len(headers))}
    context.request_processor = [RequestProcessor(dict(h)) for h in headers]
    return context


def test_the_client_s_x_request_id_wins_in_any_case_else_torchserve_s_own_id():
    context = context_for(
        {"X-Request-Id": "client-1"}, {"x-request-id": "client-2"}, {}, {"X-Request-ID": "two words"}, {"x-request-id": ""}
    )
    assert [trace_id(context, i) for i in range(5)] == ["client-1", "client-2", "ts-uuid-2", "ts-uuid-3", "ts-uuid-4"]


def test_an_unusable_x_request_id_is_replaced_and_said_so_in_the_log(caplog):
    context = context_for({"X-Request-Id": "x" * 129})
    with caplog.at_level(logging.WARNING):
        request = incoming({"body": b'{"prompt": "hi"}'}, context, 0)
    assert request["request_id"] == "ts-uuid-0"
    assert "[request ts-uuid-0] X-Request-Id: must be 1 to 128 printable ASCII" in caplog.text


def test_node_gets_each_row_s_trace_id_with_its_request():
    context = context_for({"X-Request-Id": "client-1", "url_path": "v1/completions"}, {})
    requests = [incoming({"body": b'{"prompt": "hi"}'}, context, i) for i in range(2)]
    assert requests == [
        {"body": {"prompt": "hi"}, "url_path": "v1/completions", "request_id": "client-1"},
        {"body": {"prompt": "hi"}, "request_id": "ts-uuid-1"},
    ]
    check_params(protocol.HANDLE, {"batch_id": 1, "requests": requests})


def test_an_error_body_names_its_request():
    context = context_for({}, {})
    ok = respond(context, 0, {"ok": True, "body": {"text": "x"}}, None, "client-1")
    refused = respond(context, 1, {"ok": False, "status": 400, "message": "n: too big", "field": "n"}, None, "ts-uuid-1")
    assert orjson.loads(ok) == {"text": "x"}
    assert orjson.loads(refused) == {"error": {"code": 400, "message": "n: too big", "field": "n", "request_id": "ts-uuid-1"}}
    openai = {"error": {"message": "no route", "type": "not_found_error"}}
    own = respond(context, 1, {"ok": False, "status": 404, "message": "no route", "body": openai}, None, "ts-uuid-1")
    assert orjson.loads(own) == {"error": {"message": "no route", "type": "not_found_error", "request_id": "ts-uuid-1"}}


def test_the_worker_logs_each_answer_and_each_failure_under_its_request(caplog):
    with caplog.at_level(logging.INFO):
        log_answers(["a", "b"], [{"ok": True}, {"ok": False, "status": 504, "message": "too slow"}], 0.0, ["uuid-a", "b"])
        failures(1, 503, "the handler process died", "c")
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0].startswith("tsserve: [request a] answered 200 after ") and lines[0].endswith(" ms (TorchServe request uuid-a)")
    assert lines[1].startswith("tsserve: [request b] answered 504 after ") and lines[1].endswith(": too slow")
    assert lines[2] == "tsserve: [request c] the handler process died"

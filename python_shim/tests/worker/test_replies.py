"""worker.replies: bodies and statuses, and the retire records checked against the bytes
TorchServe 0.12's own create_predict_response writes for the frontend."""

import struct

import orjson
from ts.context import Context, RequestProcessor
from ts.protocol.otf_message_handler import create_predict_response

from tsserve_shim.worker.replies import reason_phrase, respond, send_chunk, streamed, with_retirements


def context_for(count: int) -> Context:
    context = Context("m", "/tmp", {"model": {"modelName": "m"}}, count, None, "0.12.0")
    context.request_ids = {i: f"job-{i}" for i in range(count)}
    context.request_processor = [RequestProcessor({}) for _ in range(count)]
    return context


def predictions(message: bytes) -> list[dict]:
    """The predictions of one worker message, read as the frontend's ModelResponseDecoder reads them."""
    at = 0

    def integer() -> int:
        nonlocal at
        (value,) = struct.unpack_from("!i", message, at)
        at += 4
        return value

    def blob() -> bytes:
        nonlocal at
        size = integer()
        value = message[at : at + size]
        at += size
        return value

    integer(), blob()  # the batch's code and message
    out = []
    while True:
        size = integer()
        if size == -1:
            return out
        request_id = message[at : at + size].decode()
        at += size
        content_type, status, phrase = blob().decode(), integer(), blob().decode()
        headers = {blob().decode(): blob().decode() for _ in range(integer())}
        out.append({"id": request_id, "content_type": content_type, "status": status, "phrase": phrase, "headers": headers, "body": blob()})


def test_every_job_that_did_not_stream_gets_one_empty_retire_record_after_its_reply():
    context = context_for(2)
    replies = [
        respond(context, 0, {"ok": True, "body": {"a": 1}}),
        respond(context, 1, {"ok": False, "status": 400, "message": "prompt: is required", "field": "prompt"}),
    ]
    reply = with_retirements(replies, context)
    assert len(reply) == 2  # what TorchServe compares with the batch's size
    sent = predictions(create_predict_response(reply, context.request_ids, "Prediction success", 200, context=context))
    assert [p["id"] for p in sent] == ["job-0", "job-1", "job-0", "job-1"]
    first, second, *retire = sent
    assert "ts_stream_next" not in first["headers"] and first["status"] == 200 and orjson.loads(first["body"]) == {"a": 1}
    assert second["status"] == 400 and second["phrase"] == "prompt: is required" and "ts_stream_next" not in second["headers"]
    assert orjson.loads(second["body"])["error"]["field"] == "prompt"
    for record in retire:
        assert record["headers"] == {"ts_stream_next": "false"} and record["body"] == b""


def test_a_job_that_streamed_is_ended_by_its_own_last_reply_and_not_retired_twice(monkeypatch):
    context = context_for(2)
    sent: list[bytes] = []
    context.cl_socket = type("Socket", (), {"sendall": lambda self, data: sent.append(bytes(data))})()
    send_chunk(context, {"batch_id": 1, "request_index": 1, "body": {"chunk": 1}})
    assert streamed(context, 1) and not streamed(context, 0)
    replies = [respond(context, i, {"ok": True, "body": {"i": i}}) for i in range(2)]
    last = predictions(create_predict_response(with_retirements(replies, context), context.request_ids, "ok", 200, context=context))
    assert [(p["id"], p["headers"].get("ts_stream_next")) for p in last] == [("job-0", None), ("job-1", "false"), ("job-0", "false")]
    [chunk] = predictions(sent[0])
    assert chunk["headers"]["ts_stream_next"] == "true" and orjson.loads(chunk["body"]) == {"chunk": 1}


def test_reason_phrases_are_one_line_of_ascii():
    assert reason_phrase("max_tokens: must be ≥ 0\nand more") == "max_tokens: must be >= 0 and more"
    assert len(reason_phrase("x" * 500)) == 200


def test_a_body_over_the_response_limit_becomes_a_413_naming_its_size_and_the_limit():
    context = context_for(2)
    small = {"ok": True, "body": {"text": "hi"}}
    big = {"ok": True, "body": {"text": "é" * 600}}  # 1,212 bytes of UTF-8 JSON in 612 characters
    assert orjson.loads(respond(context, 0, small, limit=1000)) == {"text": "hi"}
    body = orjson.loads(respond(context, 1, big, limit=1000))
    assert context.get_response_status(1)[0] == 413
    assert body["error"]["code"] == 413
    assert body["error"]["message"].startswith("the response is 1,212 bytes, over TorchServe's max_response_size of 1,000 bytes")

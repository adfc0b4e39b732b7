"""The shim's side of KServe's envelopes, wrapped by TorchServe's own
KServeEnvelope / KServev2Envelope around a handle that answers through
tsserve_shim.envelope (the real envelopes are the reference for the shapes)."""

import json

from ts.context import Context, RequestProcessor
from ts.torch_handler.request_envelope.kserve import KServeEnvelope
from ts.torch_handler.request_envelope.kservev2 import KServev2Envelope

from tsserve_shim.worker import envelope


def make_context(requests=1):
    context = Context("tiny", "/tmp", {"model": {"modelName": "tiny", "modelVersion": "1.0"}}, requests, None, "0.12.0")
    context.request_ids = {i: f"req-{i}" for i in range(requests)}
    context.request_processor = [RequestProcessor({}) for _ in range(requests)]
    return context


def echo_handle(seen):
    """A handle whose 'model' answers each request with {"echo": prompt}, or a 400 for a refused one."""

    def handle(data, context):
        kind = envelope.detect(data, context)
        seen.append(kind)
        requests = envelope.requests(kind, data)
        if not requests:
            return envelope.responses(kind, context, envelope.no_instances())
        outcomes = [
            {"ok": False, "status": 400, "message": r["body_error"], "field": "body"}
            if "body_error" in r
            else {"ok": True, "body": {"echo": r["body"]["prompt"]}}
            for r in requests
        ]
        return envelope.responses(kind, context, outcomes)

    return handle


def test_torchserve_rows_are_not_an_envelope():
    context = make_context(2)
    assert envelope.detect([{"body": {"prompt": "a"}}, {"body": b'{"prompt": "b"}'}], context) is None
    assert envelope.detect([{"data": b"x"}, {"prompt": b"form field"}], context) is None
    # Continuous batching's in-flight jobs come back as empty rows.
    assert envelope.detect([{}, {"body": {"prompt": "b"}}], context) is None


def test_v1_instances_are_detected_in_any_number():
    assert envelope.detect([{"prompt": "a"}], make_context(1)) == envelope.KSERVE_V1
    assert envelope.detect([{"prompt": "a"}, {"prompt": "b"}, {"prompt": "c"}], make_context(1)) == envelope.KSERVE_V1
    assert envelope.detect(None, make_context(1)) == envelope.KSERVE_V1


def test_v1_through_torchserves_envelope():
    seen = []
    context = make_context(1)
    body = {"instances": [{"prompt": "a"}, {"prompt": "b"}]}
    out = KServeEnvelope(echo_handle(seen)).handle([{"body": json.dumps(body).encode()}], context)
    assert seen == [envelope.KSERVE_V1]
    assert out == [{"predictions": [{"echo": "a"}, {"echo": "b"}]}]
    assert context.get_response_status(0)[0] == 200


def test_v1_bad_instances_are_a_400_naming_them():
    context = make_context(1)
    body = {"instances": [{"prompt": "a"}, "just text", {"prompt": "c", "stream": True}, {"prompt": "d", "temperature": float("nan")}]}
    out = KServeEnvelope(echo_handle([])).handle([{"body": body}], context)
    predictions = out[0]["predictions"]
    assert predictions[0] == {"echo": "a"}
    assert predictions[1]["error"]["message"].startswith("instances[1]: must be a completion request object")
    assert predictions[2]["error"]["message"].startswith("stream: not available")
    assert predictions[3]["error"]["message"].startswith("temperature: must be a finite number")
    assert context.get_response_status(0)[0] == 400


def test_v1_without_instances_is_a_400():
    context = make_context(1)
    out = KServeEnvelope(echo_handle([])).handle([{"body": {"inputs": []}}], context)
    assert out[0]["predictions"][0]["error"]["field"] == "instances"
    assert context.get_response_status(0)[0] == 400


def test_v2_through_torchserves_envelope():
    seen = []
    context = make_context(1)
    body = {
        "id": "r1",
        "inputs": [
            {"name": "first", "shape": [1], "datatype": "BYTES", "data": [json.dumps({"prompt": "a"})]},
            {"name": "second", "shape": [1], "datatype": "BYTES", "data": [json.dumps({"prompt": "b"})]},
        ],
    }
    out = KServev2Envelope(echo_handle(seen)).handle([{"body": body}], context)
    assert seen == [envelope.KSERVE_V2]
    response = out[0]
    assert response["id"] == "r1" and response["model_name"] == "tiny" and response["model_version"] == "1.0"
    assert [o["name"] for o in response["outputs"]] == ["first", "second"]
    for output, prompt in zip(response["outputs"], ["a", "b"]):
        assert output["datatype"] == "BYTES" and tuple(output["shape"]) == (1,)
        assert json.loads(output["data"][0]) == {"echo": prompt}


def test_v2_input_that_is_not_json_is_a_400():
    context = make_context(1)
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["Alan Turing was"]}]}
    out = KServev2Envelope(echo_handle([])).handle([{"body": body}], context)
    error = json.loads(out[0]["outputs"][0]["data"][0])["error"]
    assert error["code"] == 400 and error["message"].startswith("body: is not valid JSON")
    assert context.get_response_status(0)[0] == 400

"""What an answer to the shim's requests says (answers.py): its error decoded once, whatever its shape,
and the answers the shim makes itself when no child can take or finish a request."""

import pytest

from tsserve_shim.bridge.answers import closed, closed_answer, error_of, result_of, unavailable, unavailable_answer
from tsserve_shim.bridge.errors import CONNECTION_CLOSED, HANDLER_ERROR, INTERNAL_ERROR, RpcError


def test_a_result_has_no_error_and_is_returned():
    answer = {"jsonrpc": "2.0", "id": 1, "result": {"responses": []}}
    assert error_of(answer) is None and result_of(answer, "handle") == {"responses": []}
    assert not closed(answer) and not unavailable(answer)


def test_an_error_answer_raises_its_code_message_and_data():
    answer = {"jsonrpc": "2.0", "id": 1, "error": {"code": HANDLER_ERROR, "message": "boom", "data": {"status": 400}}}
    with pytest.raises(RpcError) as raised:
        result_of(answer, "handle")
    assert (raised.value.code, raised.value.message, raised.value.data) == (HANDLER_ERROR, "boom", {"status": 400})


@pytest.mark.parametrize("error", ["boom", 7, None, ["a"]])
def test_a_malformed_error_is_an_internal_error_naming_the_method(error):
    decoded = error_of({"jsonrpc": "2.0", "id": 1, "error": error}, "handle")
    assert decoded.code == INTERNAL_ERROR and decoded.message.startswith("malformed error answer to handle")


@pytest.mark.parametrize("code, message", [("x", 3), (1.5, None), (True, ["m"])])
def test_an_error_with_a_code_or_message_of_the_wrong_type_keeps_what_it_can(code, message):
    decoded = error_of({"error": {"code": code, "message": message}})
    assert decoded.code == INTERNAL_ERROR and isinstance(decoded.message, str)


def test_a_child_that_died_first_is_closed_but_not_unavailable():
    answer = closed_answer(3, "the handler process exited while handle was pending")
    assert answer == {
        "jsonrpc": "2.0",
        "id": 3,
        "error": {"code": CONNECTION_CLOSED, "message": "the handler process exited while handle was pending"},
    }
    assert closed(answer) and not unavailable(answer)


def test_no_child_running_is_closed_and_unavailable_naming_why():
    answer = unavailable_answer("FileNotFoundError: /nonexistent/node")
    assert closed(answer) and unavailable(answer)
    assert "FileNotFoundError: /nonexistent/node" in answer["error"]["message"] and "keeps retrying" in answer["error"]["message"]


@pytest.mark.parametrize("data", ["unavailable", {"unavailable": "yes"}, [True]])
def test_other_data_on_a_closed_answer_is_not_unavailable(data):
    answer = {"error": {"code": CONNECTION_CLOSED, "message": "gone", "data": data}}
    assert closed(answer) and not unavailable(answer)


def test_another_error_code_is_not_closed():
    assert not closed({"error": {"code": HANDLER_ERROR, "message": "boom"}})
    assert not closed({"error": "malformed"})

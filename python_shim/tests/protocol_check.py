"""Checks messages against the JSON Schema exported from the zod definitions."""

import jsonschema

from tsserve_shim.bridge import protocol

_validators = {}


def _validator(schema: dict):
    key = id(schema)
    if key not in _validators:
        _validators[key] = jsonschema.Draft202012Validator(schema)
    return _validators[key]


def check_params(method: str, params: dict) -> None:
    _validator(protocol.schema()["methods"][method]["params"]).validate(params)


def check_result(method: str, result: dict) -> None:
    _validator(protocol.schema()["methods"][method]["result"]).validate(result)


class RecordingPeer:
    """Wraps a Peer so that every message it sends is checked against the schema."""

    def __init__(self, peer):
        self.peer = peer
        self.checked = 0
        self._served = {}
        send = peer._send
        serve = peer._serve_request

        def checked_send(message):
            envelopes = protocol.schema()["envelopes"]
            if "method" in message:
                _validator(envelopes["request" if "id" in message else "notification"]).validate(message)
                check_params(message["method"], message["params"])
            elif "result" in message:
                _validator(envelopes["success"]).validate(message)
                check_result(self._served.pop(message["id"]), message["result"])
            else:
                _validator(envelopes["error"]).validate(message)
            self.checked += 1
            send(message)

        def recording_serve(message):
            self._served[message["id"]] = message["method"]
            serve(message)

        peer._send = checked_send
        peer._serve_request = recording_serve

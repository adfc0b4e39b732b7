"""The TorchServe handler that bridges to a TypeScript handler bundle.

TorchServe loads a generated module (one class subclassing TsserveHandler).
`initialize` loads the model and starts `node handler.mjs`; `handle` sends
the batch to Node and serves Node's calls back into the model until the
answer arrives. A child that dies or hangs fails only its batch, and is
replaced before the next one.
"""
from __future__ import annotations

import itertools
import logging
import math
import os
import time
from typing import Any, List, Optional

import orjson

from . import envelope as kserve_envelope
from . import protocol
from .deadline import Deadline
from .errors import PeerClosed, PeerTimeout, RpcError, ShimConfigError
from .node_process import NodeProcess, find_node
from .placement import worker_device_ids
from .rpc import Peer

logger = logging.getLogger(__name__)

DEFAULT_RESPONSE_TIMEOUT_S = 120
HANDSHAKE_TIMEOUT_S = 60


def handle_deadline(model_config: dict) -> float:
    """Seconds the shim waits for one batch: `handler.handle_timeout_s`, else
    a little below TorchServe's responseTimeout so the shim answers first."""
    section = model_config.get("handler") or {}
    if section.get("handle_timeout_s"):
        return float(section["handle_timeout_s"])
    response_timeout = float(model_config.get("responseTimeout") or DEFAULT_RESPONSE_TIMEOUT_S)
    return max(1.0, min(response_timeout * 0.9, response_timeout - 2.0))


def deadline_name(model_config: dict) -> str:
    """Which setting the handle deadline comes from, as a 504 message names it."""
    section = model_config.get("handler") or {}
    if section.get("handle_timeout_s"):
        return "handler.handle_timeout_s"
    response_timeout = float(model_config.get("responseTimeout") or DEFAULT_RESPONSE_TIMEOUT_S)
    return f"set a little below responseTimeout {response_timeout:g} s"


def generation_deadline(deadline_s: float, name: str, started: float) -> Deadline:
    """When the decode loop stops a batch's rows: a margin before the handle deadline, so that
    the handler still answers (a 504 for the late requests) before the shim stops waiting for it."""
    margin = min(0.5, 0.1 * deadline_s)
    return Deadline(started + deadline_s - margin, deadline_s, name)


def _non_finite(value: Any, path: str = "") -> Optional[str]:
    """The field path of the first NaN or infinite number in a decoded body, if any."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "body"
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return None


def decode_body(row: Any) -> dict:
    """One TorchServe input row as an IncomingRequest.

    TorchServe's worker has already decoded an application/json body with
    Python's json module, which accepts NaN and 1e999; JSON-RPC cannot carry
    them (they would arrive in Node as null, i.e. "absent"), so they are refused here.
    """
    body = row.get("body") if isinstance(row, dict) else None
    if body is None and isinstance(row, dict):
        body = row.get("data")
    if isinstance(body, (bytes, bytearray)):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            return {"body": None, "body_error": "body: is not valid UTF-8"}
    if isinstance(body, str):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            return {"body": None, "body_error": f"body: is not valid JSON ({error})"}
    field = _non_finite(body)
    if field:
        return {"body": None, "body_error": f"{field}: must be a finite number (NaN and Infinity are not JSON)"}
    return {"body": body}


def with_url_path(request: dict, context, index: int) -> dict:
    """Adds the row's sub-path (TorchServe's `url_path` header: what follows
    `/predictions/<model>/<version>/`), which picks the handler route that answers."""
    processors = getattr(context, "request_processor", None)
    url_path = context.get_request_header(index, "url_path") if processors and index < len(processors) else None
    if url_path:
        request["url_path"] = url_path
    return request


def _set_cpu_threads(threads: Optional[int]) -> None:
    """Several workers on few cores each want few torch threads; the config says how many."""
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def reason_phrase(message: str) -> str:
    """The HTTP reason phrase for an error: one line of ASCII, at most 200 characters.

    TorchServe 0.12's worker frames the phrase by its length in characters but
    writes it as UTF-8, so a non-ASCII phrase ("max_tokens: must be ≥ 0")
    corrupts the reply and the frontend kills the worker. The JSON body keeps
    the message as it is.
    """
    text = " ".join(message.replace("≥", ">=").replace("≤", "<=").split())
    return text.encode("ascii", "replace").decode("ascii")[:200]


def json_line(value: Any) -> str:
    """A response body: one line of JSON. A streamed answer is then newline-delimited JSON, one chunk a line."""
    return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE).decode("utf-8")


def error_body(status: int, message: str, field: Optional[str] = None) -> dict:
    error = {"code": status, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


class TsserveHandler:
    """Subclasses set `bundle_file`; TorchServe instantiates the subclass."""

    bundle_file = "handler.mjs"

    def __init__(self) -> None:
        self.initialized = False
        self.engine = None
        self.child: Optional[NodeProcess] = None
        self.peer: Optional[Peer] = None
        self._batch_ids = itertools.count(1)
        self._context = None
        self._deadline: Optional[Deadline] = None
        self.continuous = None  # continuous.ContinuousMode under asyncCommunication

    # ------------------------------------------------------------ TorchServe API

    def initialize(self, context) -> None:
        from .engine import Engine  # torch loads only when a model does

        props = context.system_properties
        self.model_dir = props.get("model_dir") or os.getcwd()
        self.model_config = dict(context.model_yaml_config or {})
        section = self.model_config.get("handler")
        if not isinstance(section, dict) or not section.get("model_path"):
            raise ShimConfigError("model-config.yaml needs a handler: section with model_path")
        self.node = find_node(section.get("node"))
        self.bundle = os.path.join(self.model_dir, self.bundle_file)
        if not os.path.isfile(self.bundle):
            raise ShimConfigError(f"handler bundle {self.bundle} is missing from the archive")
        self.model_name = context.manifest.get("model", {}).get("modelName") or props.get("model_name") or "model"
        self.gpu_id = props.get("gpu_id")
        self.batch_size = int(props.get("batch_size") or 1)
        self.deadline_s = handle_deadline(self.model_config)
        self.deadline_name = deadline_name(self.model_config)
        _set_cpu_threads(section.get("cpu_threads"))
        self.engine = Engine.load(
            section,
            model_dir=self.model_dir,
            gpu_id=self.gpu_id,
            device_type=self.model_config.get("deviceType"),
            device_ids=worker_device_ids(self.model_config),
        )
        self._start_child()
        from .continuous import ContinuousMode, continuous_batching

        if continuous_batching(self.model_config):
            self.continuous = ContinuousMode(self).connect()
        self.initialized = True

    def handle(self, data: List[Any], context) -> List[Any]:
        if self.continuous is not None:
            return self.continuous.handle(data, context)  # a coroutine: TorchServe's async worker awaits it
        self._context = context
        self._deadline = generation_deadline(self.deadline_s, self.deadline_name, time.monotonic())
        envelope = kserve_envelope.detect(data, context)
        if envelope is None:
            requests = [with_url_path(decode_body(row), context, index) for index, row in enumerate(data)]
        else:
            requests = kserve_envelope.requests(envelope, data, decode_body)
            data = requests  # one outcome per instance or input
        batch_id = next(self._batch_ids)
        try:
            if not requests:
                return kserve_envelope.responses(envelope, context, kserve_envelope.no_instances(), error_body, reason_phrase)
            if self.child is None or not self.child.alive():
                self._start_child()
            result = self.peer.request(protocol.HANDLE, {"batch_id": batch_id, "requests": requests}, timeout=self.deadline_s)
            outcomes = result["responses"]
        except PeerClosed:
            self.child.reap()
            outcomes = self._fail_all(len(data), 503, f"the handler process died during the request ({self._child_exit()}); it has been restarted")
            self._replace_child()
        except PeerTimeout:
            outcomes = self._fail_all(len(data), 504, f"the handler did not answer within {self.deadline_s:g} s; its process was stopped and restarted")
            self._replace_child()
        except RpcError as error:
            outcomes = self._fail_all(len(data), 500, f"handler error: {error.message}")
        finally:
            self._context = None
            self._deadline = None
        if envelope is not None:
            return kserve_envelope.responses(envelope, context, outcomes, error_body, reason_phrase)
        return [self._respond(context, index, outcome) for index, outcome in enumerate(outcomes)]

    # ------------------------------------------------------------ the child

    def _start_child(self) -> None:
        self.child = NodeProcess(self.node, self.bundle, cwd=self.model_dir)
        self.peer = Peer(self.child.stdout_fd, self.child.stdin_fd, on_noise=lambda line: logger.warning("tsserve channel: %s", line), on_deadline=self._stop_hung_child)
        self.peer.on_request(protocol.GENERATE, self._serve_generate)
        self.peer.on_request(protocol.TOKENIZE, lambda p: {"ids": self.engine.tokenize(p["texts"], p["add_special_tokens"])})
        self.peer.on_request(protocol.DETOKENIZE, lambda p: {"texts": self.engine.detokenize(p["ids"], p["skip_special_tokens"])})
        self.peer.on_notification(protocol.STREAM_CHUNK, self._send_chunk)
        params = {
            "protocol_version": protocol.PROTOCOL_VERSION,
            "model_name": self.model_name,
            "model_dir": self.model_dir,
            "gpu_id": self.gpu_id,
            "batch_size": self.batch_size,
            "model_config": self.model_config,
            "model_info": self.engine.info(),
        }
        try:
            self.peer.request(protocol.INITIALIZE, params, timeout=HANDSHAKE_TIMEOUT_S)
        except (PeerClosed, PeerTimeout, RpcError) as error:
            reason = error.message if isinstance(error, RpcError) else str(error)
            tail = self.child.stderr_tail()
            self.child.stop()
            raise ShimConfigError(f"the handler bundle failed to start: {reason} ({self._child_exit()})\n--- node stderr ---\n{tail}\n--- end of node stderr ---") from None
        logger.info("tsserve: handler bundle started (node pid %d, %s)", self.child.pid, self.node)

    def _stop_hung_child(self) -> None:
        """The watchdog's action when a batch overruns its deadline: the stop ladder, with short waits."""
        if self.child is not None:
            self.child.stop(grace=0.5)

    def _child_exit(self) -> str:
        return self.child.exit_description() if self.child else "not started"

    def _replace_child(self) -> None:
        if self.child is not None:
            self.child.stop()
            logger.error("tsserve: handler process %s; stderr tail:\n%s", self.child.exit_description(), self.child.stderr_tail())
        self.child = None
        try:
            self._start_child()
        except ShimConfigError as error:
            logger.error("tsserve: could not restart the handler process: %s", error)

    def _serve_generate(self, params: dict) -> dict:
        call_id = params["call_id"]

        def on_delta(request_index: int, sequence_index: int, text: str, logprobs: Optional[dict]) -> None:
            self.peer.notify(protocol.GENERATION_DELTA, {
                "call_id": call_id, "request_index": request_index, "sequence_index": sequence_index,
                "text": text, "logprobs": logprobs,
            })
            self.peer.poll_notifications()

        wants_stream = any(request.get("stream") for request in params["requests"])
        outcomes = self.engine.generate(params["requests"], on_delta if wants_stream else None, self._deadline)
        return {"outcomes": outcomes}

    def _send_chunk(self, params: dict) -> None:
        self._send_chunk_to(self._context, params)

    def _send_chunk_to(self, context, params: dict) -> None:
        from ts.handler_utils.utils import send_intermediate_predict_response

        index = params["request_index"]
        if context is None or context.request_ids is None or index not in context.request_ids:
            return
        content_type = params.get("content_type")
        context.set_response_content_type(index, content_type or "application/json")
        body = params["body"] if content_type else json_line(params["body"])
        send_intermediate_predict_response({index: body}, {index: context.request_ids[index]}, "Intermediate response", 200, context)

    # ------------------------------------------------------------ responses

    @staticmethod
    def _fail_all(count: int, status: int, message: str) -> List[dict]:
        logger.error("tsserve: %s", message)
        return [{"ok": False, "status": status, "message": message}] * count

    @staticmethod
    def _respond(context, index: int, outcome: dict) -> str:
        content_type = outcome.get("content_type") if outcome["ok"] else None
        context.set_response_content_type(index, content_type or "application/json")
        if outcome["ok"]:
            return outcome["body"] if content_type else json_line(outcome["body"])
        status = outcome["status"]
        context.set_response_status(status, reason_phrase(outcome["message"]), index)
        body = outcome["body"] if "body" in outcome else error_body(status, outcome["message"], outcome.get("field"))
        return json_line(body)

    def shutdown(self) -> None:
        if self.continuous is None and self.peer is not None and self.child is not None and self.child.alive():
            try:
                self.peer.request(protocol.SHUTDOWN, {}, timeout=2)
            except (PeerClosed, PeerTimeout, RpcError):
                pass
        if self.child is not None:
            self.child.stop()

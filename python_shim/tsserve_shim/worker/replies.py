"""What the worker hands back to TorchServe: response bodies, statuses, stream chunks, and
under asyncCommunication the records that retire each job from the frontend's table.

TorchServe 0.12's frontend (AsyncBatchAggregator) keeps every job it gave the
worker in `jobs_in_backend` until a prediction for it carries
`ts_stream_next: "false"`; TorchServe's Python side writes "false" only on the
last reply of a request that streamed. A non-streamed reply must come without
the header (with it the frontend sends a body without a response head), so it
would stay in the table for good, and a later batch-level error would be sent
to all of them. So each non-streamed reply is followed, in the same message, by
a second prediction for the same job: empty, with `ts_stream_next: "false"`.
The frontend hands it to a response that is already complete (its writes are
refused by Netty's encoder, nothing reaches the client) and removes the job.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from .trace import tagged

log = logging.getLogger(__name__)

STREAM_NEXT = "ts_stream_next"


def json_line(value: Any) -> str:
    """A response body: one line of JSON. A streamed answer is then newline-delimited JSON, one chunk a line."""
    return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE).decode("utf-8")


def error_body(status: int, message: str, field: str | None = None, request_id: str | None = None) -> dict:
    error: dict[str, Any] = {"code": status, "message": message}
    if field is not None:
        error["field"] = field
    if request_id is not None:
        error["request_id"] = request_id  # what `tsserve logs --request` takes
    return {"error": error}


def reason_phrase(message: str) -> str:
    """The HTTP reason phrase for an error: one line of ASCII, at most 200 characters.

    TorchServe 0.12's worker frames the phrase by its length in characters but
    writes it as UTF-8, so a non-ASCII phrase ("max_tokens: must be ≥ 0")
    corrupts the reply and the frontend kills the worker. The JSON body keeps
    the message as it is.
    """
    text = " ".join(message.replace("≥", ">=").replace("≤", "<=").split())
    return text.encode("ascii", "replace").decode("ascii")[:200]


def failures(count: int, status: int, message: str, trace: str | None = None) -> list[dict]:
    """The same failed RequestOutcome for each of ``count`` requests (``trace``: theirs, for the log line)."""
    log.error("tsserve: %s", tagged(trace, message))
    return [{"ok": False, "status": status, "message": message}] * count


def outcome_body(outcome: dict, request_id: str | None = None) -> Any:
    """A RequestOutcome's body: the handler's own, or the error body; an error names ``request_id`` (in a route's
    own error body too, where it has an `error` object: OpenAI's)."""
    if outcome["ok"]:
        return outcome["body"]
    if "body" in outcome:
        own = outcome["body"]
        error = own.get("error") if isinstance(own, dict) else None
        if request_id is None or not isinstance(error, dict) or "request_id" in error:
            return own
        return {**own, "error": {**error, "request_id": request_id}}
    return error_body(outcome["status"], outcome["message"], outcome.get("field"), request_id)


def body_bytes(body: Any) -> int:
    """How many bytes TorchServe's worker writes for a body (a str goes out as UTF-8)."""
    if isinstance(body, (bytes, bytearray)):
        return len(body)
    return len(body) if body.isascii() else len(body.encode("utf-8"))


def too_large(size: int, limit: int) -> dict:
    """The outcome that replaces an answer the frontend would refuse (and drop the worker for)."""
    message = (
        f"the response is {size:,} bytes, over TorchServe's max_response_size of {limit:,} bytes: "
        "ask for less (fewer prompts, tokens or logprobs) or raise max_response_size in config.properties"
    )
    return {"ok": False, "status": 413, "message": message}


def respond(context, index: int, outcome: dict, limit: int | None = None, request_id: str | None = None) -> str:
    """Set the request's content type and status on the context; its body (a 413 when over ``limit`` bytes), an
    error naming ``request_id``. (The frontend answers every request with its own id in `x-request-id`.)"""
    content_type = outcome.get("content_type") if outcome["ok"] else None
    body = outcome["body"] if content_type else json_line(outcome_body(outcome, request_id))
    if limit is not None and body_bytes(body) > limit:
        log.error("tsserve: %s", tagged(request_id, f"refused a response of {body_bytes(body)} bytes (max_response_size {limit})"))
        outcome, content_type = too_large(body_bytes(body), limit), None
        body = json_line(outcome_body(outcome, request_id))
    context.set_response_content_type(index, content_type or "application/json")
    if not outcome["ok"]:
        context.set_response_status(outcome["status"], reason_phrase(outcome["message"]), index)
    return body


def chunk_body(params: dict) -> str:
    """A StreamChunk's body as it goes out: the handler's own text, or its value as a JSON line."""
    return params["body"] if params.get("content_type") else json_line(params["body"])


def stream_over(sent: int, limit: int) -> dict:
    """The outcome that ends a stream whose chunks came to more than handler.max_stream_bytes."""
    message = (
        f"the stream sent {sent:,} bytes, over handler.max_stream_bytes ({limit:,}): TorchServe holds what a client has "
        "not read yet, so a stream stops there; ask for fewer tokens or logprobs, or raise handler.max_stream_bytes"
    )
    return {"ok": False, "status": 413, "message": message}


def send_chunk(context, params: dict, limit: int | None = None) -> None:
    """A StreamChunk as TorchServe's intermediate response (`ts_stream_next: "true"`); a chunk
    over ``limit`` bytes is replaced by an error line."""
    from ts.handler_utils.utils import send_intermediate_predict_response

    index = params["request_index"]
    if context is None or context.request_ids is None or index not in context.request_ids:
        return
    content_type = params.get("content_type")
    context.set_response_content_type(index, content_type or "application/json")
    body = chunk_body(params)
    if limit is not None and body_bytes(body) > limit:
        content_type, body = None, json_line(outcome_body(too_large(body_bytes(body), limit)))
        context.set_response_content_type(index, "application/json")
    send_intermediate_predict_response({index: body}, {index: context.request_ids[index]}, "Intermediate response", 200, context)


def streamed(context, index: int) -> bool:
    """Whether a chunk of this request went out already (then TorchServe ends its stream itself)."""
    return context.get_response_headers(index).get(STREAM_NEXT) == "true"


class AsyncReply(list):
    """The replies of a batch, then the retire records; ``len()`` counts the replies only,
    which is what TorchServe 0.12 checks against the batch's size."""

    def __init__(self, replies: list, retirements: list) -> None:
        super().__init__(replies + retirements)
        self._replies = len(replies)

    def __len__(self) -> int:
        return self._replies


def with_retirements(replies: list, context) -> AsyncReply:
    """Add an empty `ts_stream_next: "false"` prediction for every job of the batch that did not stream."""
    from ts.context import RequestProcessor

    jobs = dict(context.request_ids)
    retirements: list = []
    for index, request_id in jobs.items():
        if streamed(context, index):
            continue
        extra = len(jobs) + len(retirements)
        context.request_ids[extra] = request_id
        context.request_processor.append(RequestProcessor({}))
        context.set_response_header(extra, STREAM_NEXT, "false")
        retirements.append(b"")
    return AsyncReply(replies, retirements)

"""What a request that vLLM does not answer becomes: its own outcome, never its call's. vLLM's refusals
(VLLMClientError, ValueError from SamplingParams or add_request) are that request's 400 naming its field;
its admission-control errors (GracefulHTTPError: queue or prefill backlog full) keep their HTTP status;
EngineGenerateError is a 500 that says what vLLM hit; a sequence that vLLM ends with finish_reason
"error" or "abort" is a 500 saying so. EngineDeadError is the engine's (engine.py: the worker restarts)."""

from __future__ import annotations

from ..common.output import generation_failure
from ..contract import Outcome, error_outcome

# vLLM's request parameters, as the request fields tsserve's 400s name.
REFUSED_FIELDS = {
    "n": "n",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "max_tokens": "max_tokens",
    "logprobs": "logprobs",
    "prompt_logprobs": "logprobs",
    "seed": "seed",
    "stop": "stop",
    "repetition_penalty": "repetition_penalty",
}
# vLLM's finish reasons that are no answer: the request's own failure. "abort" comes from vLLM itself here:
# tsserve's own cancels end the rows as cancelled before vLLM reports them.
UNANSWERED = {
    "error": (500, "vLLM ended the request with an error"),
    "abort": (500, "vLLM aborted the request, which no one cancelled"),
}


def refusal(error: Exception) -> Outcome:
    """A request vLLM refuses (or tsserve's mapping onto vLLM does): that request's 400, naming its field where
    vLLM names the parameter (or the message begins with it: "n must be 1 when using greedy sampling")."""
    parameter = getattr(error, "parameter", None) or str(error).split(" ", 1)[0]
    field = REFUSED_FIELDS.get(parameter)
    message = f"the vLLM engine refused the request: {error}"
    return error_outcome(400, f"{field}: {message}" if field else message, field)


def unanswered(finish_reason: str | None, sequence: int) -> Outcome | None:
    """The failure of a sequence vLLM finished with no answer, else None."""
    if finish_reason not in UNANSWERED:
        return None
    status, why = UNANSWERED[finish_reason]
    return error_outcome(status, f"{why} (sequence {sequence})")


def request_failure(error: Exception) -> Outcome:
    """The outcome of one request whose vLLM generate raised (not its deadline, its cancel or the engine's death)."""
    from vllm.exceptions import GracefulHTTPError, VLLMClientError
    from vllm.v1.engine.exceptions import EngineGenerateError

    if isinstance(error, VLLMClientError | ValueError):
        return refusal(error)
    if isinstance(error, GracefulHTTPError):
        return error_outcome(int(error.http_status), f"the vLLM engine: {error.message}")
    if isinstance(error, EngineGenerateError) and error.__cause__ is not None:
        cause = error.__cause__
        return error_outcome(500, f"the vLLM engine failed to generate the request: {type(cause).__name__}: {cause}")
    return generation_failure(error, 1)

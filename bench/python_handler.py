"""The benchmark's baseline: a native Python TorchServe handler doing what
handlers/llama-2-7b-chat.ts does for a raw `prompt`, in-process.

It reads the request the way the TypeScript handler does (the seed's
defaults), formats the prompt the same way (the AgentInstruct rewrite behind
an empty Llama-2 system block; test/unit/bench/python-handler.test.ts checks
it byte for byte against `tsserve render`), calls the same Engine
(tsserve_shim.engine) and answers with the same body. It covers the requests
the benchmark sends (a raw prompt, no streaming, no echo); it is not a
replacement for the TypeScript handler.

TorchServe imports this file and instantiates its one class.
"""

from __future__ import annotations

import os
import time
import uuid

import orjson

# In this order; each replaces every occurrence (src/prompts/agentinstruct.ts).
AGENTINSTRUCT_REWRITES = (
    ("<|im_start|>system\n", "<human>: "),
    ("<|im_start|>user\n", "<human>: "),
    ("<|im_start|>assistant\n", "<bot>: "),
    ("<|im_start|>user", "<human>:"),
    ("<|im_start|>assistant", "<bot>:"),
    ("\n<|im_end|>", ""),
    ("<|im_end|>", ""),
)
LLAMA2_RAW_PROMPT_PREFIX = "[INST] <<SYS>>\n\n<</SYS>>\n\n"
DEFAULTS = {
    "seed": 0,
    "max_tokens": 16,
    "temperature": 0.8,
    "top_p": 0.0,
    "top_k": 50,
    "repetition_penalty": 1.0,
    "logprobs": 0,
    "n": 1,
    "echo": False,
}


def format_prompt(prompt: str) -> str:
    """What the Llama-2 chat handlers send for a raw prompt."""
    for old, new in AGENTINSTRUCT_REWRITES:
        prompt = prompt.replace(old, new)
    return LLAMA2_RAW_PROMPT_PREFIX + prompt.rstrip()


def _value(body: dict, key: str):
    value = body.get(key)
    return DEFAULTS[key] if value is None else value


def generate_request(body: dict) -> dict:
    stop = body.get("stop")
    n = _value(body, "n")
    return {
        "prompt": format_prompt(body["prompt"]),
        "max_tokens": int(_value(body, "max_tokens")),
        "temperature": float(_value(body, "temperature")),
        "top_p": float(_value(body, "top_p")),
        "top_k": int(_value(body, "top_k")),
        "repetition_penalty": float(_value(body, "repetition_penalty")),
        "seed": int(_value(body, "seed")),
        "stop": [] if stop is None else [stop] if isinstance(stop, str) else list(stop),
        "logprobs": int(_value(body, "logprobs")),
        "num_sequences": int(body.get("best_of") or n),
        "echo": False,
        "stream": False,
    }


def response_body(body: dict, outcome: dict, model: str, created: int) -> dict:
    n = int(_value(body, "n"))
    choices = [
        {
            "text": sequence["text"],
            "index": index,
            "finish_reason": sequence["finish_reason"],
            "logprobs": {key: sequence["logprobs"][key] for key in ("tokens", "token_logprobs", "top_logprobs", "text_offset")},
        }
        for index, sequence in enumerate(outcome["sequences"][:n])
    ]
    completion_tokens = sum(len(sequence["logprobs"]["tokens"]) for sequence in outcome["sequences"])
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": created,
        "model": body.get("model") or model,
        "choices": choices,
        "usage": {
            "prompt_tokens": outcome["prompt_tokens"],
            "completion_tokens": completion_tokens,
            "total_tokens": outcome["prompt_tokens"] + completion_tokens,
        },
        "raw_compute_time": outcome["compute_time"],
    }


class PythonLlama2ChatHandler:
    def __init__(self) -> None:
        self.initialized = False
        self.engine = None

    def initialize(self, context) -> None:
        from tsserve_shim.engine.transformers.engine import Engine  # torch loads with the model, as in the shim
        from tsserve_shim.model.handler_config import HandlerConfig

        props = context.system_properties
        model_dir = props.get("model_dir") or os.getcwd()
        config = dict(context.model_yaml_config or {})
        handler_config = HandlerConfig.from_section(config.get("handler") or {})
        if handler_config.cpu_threads:
            import torch

            torch.set_num_threads(handler_config.cpu_threads)
        self.model_name = context.manifest.get("model", {}).get("modelName") or "model"
        self.engine = Engine.load(
            handler_config,
            model_dir=model_dir,
            gpu_id=props.get("gpu_id"),
            device_type=config.get("deviceType"),
            device_ids=config.get("deviceIds"),
        )
        self.initialized = True

    def handle(self, data, context):
        created = int(time.time())
        answers, live = [None] * len(data), []
        for index, row in enumerate(data):
            raw = row.get("body") if row.get("body") is not None else row.get("data")
            try:
                body = orjson.loads(raw) if isinstance(raw, (bytes, bytearray, str)) else raw
                if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
                    raise ValueError("prompt: required (a string)")
                live.append((index, body, generate_request(body)))
            except (ValueError, TypeError) as error:
                context.set_response_status(400, str(error)[:200], index)
                answers[index] = orjson.dumps({"error": {"code": 400, "message": str(error)}}).decode()
        outcomes = self.engine.generate([request for _, _, request in live]) if live else []
        for (index, body, _), outcome in zip(live, outcomes):
            context.set_response_content_type(index, "application/json")
            if outcome["ok"]:
                answers[index] = orjson.dumps(response_body(body, outcome, self.model_name, created)).decode()
            else:
                context.set_response_status(outcome["status"], outcome["message"][:200], index)
                answers[index] = orjson.dumps({"error": {"code": outcome["status"], "message": outcome["message"]}}).decode()
        return answers

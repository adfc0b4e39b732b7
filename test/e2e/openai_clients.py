"""The real OpenAI clients against a tsserve model, and the reference they are held to.

Run by test/e2e/openai.test.ts, each mode in its own process, each printing one JSON report line:

    python openai_clients.py clients BASE_URL MODEL_NAME MODEL_PATH   (OPENAI_API_KEY = the inference key)
    python openai_clients.py reference MODEL_PATH

BASE_URL is http://127.0.0.1:PORT/predictions/MODEL/VERSION/v1. `clients` uses
the `openai` SDK (completions and chat, streamed and not, n > 1, logprobs,
errors, models), re-validating the typed objects it returns with pydantic, then
sends prompts as token ids and round-trips the tokenizer routes, then runs
lm-evaluation-harness's own evaluator on the local tasks of test/fixtures/lm-eval
(lm_eval_tasks.py): `local-completions` with token-id requests (lm-eval's
default, its tokenizer found on the server) and with text requests, and
`local-chat-completions` with the chat template. `reference` runs the same
tasks on lm-eval's `hf` model in process, without any server, so it can run
while TorchServe starts.
"""

from __future__ import annotations

import json
import os
import sys
import time

import lm_eval_tasks
import openai
from openai import OpenAI
from openai.types import Completion, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk

MODE = sys.argv[1]
BASE_URL, MODEL, MODEL_PATH = sys.argv[2:5] if MODE == "clients" else ("", "", sys.argv[2])
PROMPTS = ["The capital of France is", "One, two, three,"]
CHAT = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour."}]


def validated(model_type, obj):
    """The SDK builds its objects without validation; validate them for real."""
    return model_type.model_validate(obj.model_dump())


def sdk_report(client: OpenAI) -> dict:
    out: dict = {}
    models = [validated(Model, m) for m in client.models.list()]
    out["models"] = [m.id for m in models]

    completion = validated(
        Completion, client.completions.create(model=MODEL, prompt=PROMPTS, max_tokens=4, temperature=0.8, n=2, seed=11, logprobs=2)
    )
    out["completion"] = {
        "indices": [c.index for c in completion.choices],
        "texts": [c.text for c in completion.choices],
        "finish_reasons": [c.finish_reason for c in completion.choices],
        "logprob_lengths": [len(c.logprobs.tokens) for c in completion.choices],
        "top_sizes": [sorted({len(t) for t in c.logprobs.top_logprobs}) for c in completion.choices],
        "tokens_join": ["".join(c.logprobs.tokens) for c in completion.choices],
        "usage": completion.usage.model_dump(),
    }

    # Not re-validated: with echo the first prompt token has no logprob, and the API (OpenAI's, vLLM's,
    # this one) sends null there, which the SDK's types (list of floats) do not allow for.
    echo = client.completions.create(model=MODEL, prompt=PROMPTS[0], max_tokens=0, echo=True, logprobs=1, temperature=0)
    out["echo"] = {
        "text": echo.choices[0].text,
        "first_logprob": echo.choices[0].logprobs.token_logprobs[0],
        "tokens": len(echo.choices[0].logprobs.tokens),
    }

    # Chunks before the last carry finish_reason null, as OpenAI's do, which the SDK's Completion type
    # (shared by streamed and whole answers) does not allow for: only finished chunks are re-validated.
    chunks = [
        validated(Completion, c) if all(x.finish_reason for x in c.choices) else c
        for c in client.completions.create(
            model=MODEL, prompt=PROMPTS[0], max_tokens=4, temperature=0.8, n=2, seed=11, stream=True, stream_options={"include_usage": True}
        )
    ]
    streamed: dict = {}
    for chunk in chunks:
        for choice in chunk.choices:
            streamed[choice.index] = streamed.get(choice.index, "") + choice.text
    out["completion_stream"] = {
        "chunks": len(chunks),
        "texts": [streamed[i] for i in sorted(streamed)],
        "finish_reasons": [c.finish_reason for c in chunks[-2].choices],
        "usage": chunks[-1].usage.model_dump() if chunks[-1].usage else None,
        "last_choices": len(chunks[-1].choices),
    }

    chat = validated(
        ChatCompletion,
        client.chat.completions.create(
            model=MODEL, messages=CHAT, max_tokens=5, temperature=0.8, n=2, seed=5, logprobs=True, top_logprobs=2
        ),
    )
    out["chat"] = {
        "object": chat.object,
        "roles": [c.message.role for c in chat.choices],
        "texts": [c.message.content for c in chat.choices],
        "indices": [c.index for c in chat.choices],
        "logprob_tokens_join": ["".join(t.token for t in c.logprobs.content) for c in chat.choices],
        "top_sizes": [sorted({len(t.top_logprobs) for t in c.logprobs.content}) for c in chat.choices],
        "bytes_ok": all(bytes(t.bytes).decode("utf-8", "replace") == t.token for c in chat.choices for t in c.logprobs.content if t.bytes),
        "usage": chat.usage.model_dump(),
    }

    single = validated(ChatCompletion, client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=5, temperature=0.8, seed=5))
    stream = [
        validated(ChatCompletionChunk, c)
        for c in client.chat.completions.create(
            model=MODEL, messages=CHAT, max_tokens=5, temperature=0.8, seed=5, stream=True, stream_options={"include_usage": True}
        )
    ]
    content = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    out["chat_stream"] = {
        "first_role": stream[0].choices[0].delta.role,
        "text": content,
        "unstreamed_text": single.choices[0].message.content,
        "finish_reason": next(c.choices[0].finish_reason for c in stream if c.choices and c.choices[0].finish_reason),
        "usage": stream[-1].usage.model_dump() if stream[-1].usage else None,
        "unstreamed_usage": single.usage.model_dump(),
    }

    errors = {}
    for name, call in {
        "max_tokens": lambda: client.completions.create(model=MODEL, prompt="x", max_tokens=-1),
        "top_logprobs": lambda: client.chat.completions.create(model=MODEL, messages=CHAT, top_logprobs=3),
        "messages": lambda: client.chat.completions.create(model=MODEL, messages=[{"role": "wizard", "content": "hi"}]),
        "embeddings": lambda: client.embeddings.create(model=MODEL, input="x"),
    }.items():
        try:
            call()
            errors[name] = None
        except openai.APIStatusError as error:
            errors[name] = {
                "class": type(error).__name__,
                "status": error.status_code,
                "param": error.param,
                "type": error.type,
                "message": error.message,
            }
    out["errors"] = errors
    return out


def token_id_report(client: OpenAI) -> dict:
    """Prompts as token ids (one list, a list of lists), tokenize/detokenize round trips, a bad id."""

    def tokenize(body: dict) -> dict:
        return client.post("/tokenize", body=body, cast_to=object)

    def detokenize(tokens: list[int]) -> str:
        return client.post("/detokenize", body={"tokens": tokens}, cast_to=object)["prompt"]

    ids = [tokenize({"prompt": p})["tokens"] for p in PROMPTS]
    greedy = dict(model=MODEL, max_tokens=4, temperature=0, logprobs=1)
    by_text = validated(Completion, client.completions.create(prompt=PROMPTS, **greedy))
    by_ids = validated(Completion, client.completions.create(prompt=ids, **greedy))
    one_list = validated(Completion, client.completions.create(prompt=ids[1], **greedy))
    echo = client.completions.create(model=MODEL, prompt=[ids[0]], max_tokens=1, echo=True, logprobs=1, temperature=0, seed=1234)
    # A reply the model ends here: the next token is EOS, which a scoring (echo) request still reports.
    ended = tokenize({"prompt": "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHi there! How can I assist you today?"})["tokens"]
    eos = client.completions.create(model=MODEL, prompt=[ended], max_tokens=1, echo=True, logprobs=1, temperature=0)
    strs = tokenize({"prompt": PROMPTS[0], "return_token_strs": True})
    chat = tokenize({"messages": CHAT})
    try:
        client.completions.create(model=MODEL, prompt=[ids[0], [1, 10**7]], max_tokens=1)
        bad_id = None
    except openai.APIStatusError as error:
        bad_id = {"class": type(error).__name__, "status": error.status_code, "param": error.param, "message": error.message}
    # At the model's version path, where lm-eval looks (its base_url less /v1/completions).
    info = client.get(BASE_URL.removesuffix("/v1") + "/tokenizer_info", cast_to=object)
    from transformers import AutoTokenizer

    chat_reference = AutoTokenizer.from_pretrained(MODEL_PATH).apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    return {
        "token_ids": {
            "ids": ids,
            "texts_by_text": [c.text for c in by_text.choices],
            "texts_by_ids": [c.text for c in by_ids.choices],
            "indices_by_ids": [c.index for c in by_ids.choices],
            "one_list_text": one_list.choices[0].text,
            "usage_by_text": by_text.usage.model_dump(),
            "usage_by_ids": by_ids.usage.model_dump(),
            "echo_text": echo.choices[0].text,
            "echo_tokens": len(echo.choices[0].logprobs.tokens),
            "echo_first_logprob": echo.choices[0].logprobs.token_logprobs[0],
            "echo_prompt_tokens": echo.usage.prompt_tokens,
            "eos_prompt_tokens": len(ended),
            "eos_logprob_tokens": len(eos.choices[0].logprobs.tokens),
            "eos_finish_reason": eos.choices[0].finish_reason,
            "eos_last_logprob": eos.choices[0].logprobs.token_logprobs[-1],
            "round_trips": [detokenize(t) for t in ids],
            "token_strs_join": "".join(strs["token_strs"]),
            "count": strs["count"],
            "max_model_len": strs["max_model_len"],
            "chat_text": detokenize(chat["tokens"]),
            "chat_reference": chat_reference,
            "bad_id": bad_id,
            "tokenizer_info": info,
        }
    }


def main() -> None:
    started = time.monotonic()
    if MODE == "reference":
        report = {"lm_eval": lm_eval_tasks.reference(MODEL_PATH)}
    else:
        client = OpenAI(base_url=BASE_URL, api_key=os.environ["OPENAI_API_KEY"], max_retries=0, timeout=120)
        sdk_started = time.monotonic()
        sdk = {**sdk_report(client), **token_id_report(client)}
        sdk_seconds = round(time.monotonic() - sdk_started, 1)
        report = {
            "sdk": sdk,
            "sdk_seconds": sdk_seconds,
            "lm_eval": lm_eval_tasks.served(BASE_URL, MODEL, MODEL_PATH, os.environ["OPENAI_API_KEY"]),
        }
    report["seconds"] = round(time.monotonic() - started, 1)
    print("REPORT " + json.dumps(report))


if __name__ == "__main__":
    main()

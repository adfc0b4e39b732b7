"""The real OpenAI clients against a tsserve model, and the reference they are held to.

Run by test/e2e/openai.test.ts, each mode in its own process, each printing one JSON report line:

    python openai_clients.py clients BASE_URL MODEL_NAME MODEL_PATH   (OPENAI_API_KEY = the inference key)
    python openai_clients.py reference MODEL_PATH

BASE_URL is http://127.0.0.1:PORT/predictions/MODEL/VERSION/v1. `clients` uses
the `openai` SDK (completions and chat, streamed and not, n > 1, logprobs,
errors, models), re-validating the typed objects it returns with pydantic, then
runs lm-evaluation-harness's `local-completions` model on handmade
loglikelihood and generate_until requests. `reference` answers the same
lm-eval requests with transformers directly (a forward pass, greedy
generate), without any server, so it can run while TorchServe starts.
"""
from __future__ import annotations

import json
import os
import sys
import time

import openai
from openai import OpenAI
from openai.types import Completion, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk

MODE = sys.argv[1]
BASE_URL, MODEL, MODEL_PATH = sys.argv[2:5] if MODE == "clients" else ("", "", sys.argv[2])
PROMPTS = ["The capital of France is", "One, two, three,"]
CHAT = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour."}]
LOGLIKELIHOOD = [
    ("The capital of France is", " Paris"),
    ("The capital of France is", " a banana"),
    ("Question: What is 2 + 2?\nAnswer:", " 4"),
    ("The quick brown fox jumps over the", " lazy dog"),
]
GENERATE = [("The capital of France is", "\n"), ("Q: What colour is the sky?\nA:", "\n")]
MAX_GEN_TOKS = 8


def validated(model_type, obj):
    """The SDK builds its objects without validation; validate them for real."""
    return model_type.model_validate(obj.model_dump())


def sdk_report(client: OpenAI) -> dict:
    out: dict = {}
    models = [validated(Model, m) for m in client.models.list()]
    out["models"] = [m.id for m in models]

    completion = validated(Completion, client.completions.create(
        model=MODEL, prompt=PROMPTS, max_tokens=4, temperature=0.8, n=2, seed=11, logprobs=2))
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
    out["echo"] = {"text": echo.choices[0].text, "first_logprob": echo.choices[0].logprobs.token_logprobs[0],
                   "tokens": len(echo.choices[0].logprobs.tokens)}

    # Chunks before the last carry finish_reason null, as OpenAI's do, which the SDK's Completion type
    # (shared by streamed and whole answers) does not allow for: only finished chunks are re-validated.
    chunks = [validated(Completion, c) if all(x.finish_reason for x in c.choices) else c for c in client.completions.create(
        model=MODEL, prompt=PROMPTS[0], max_tokens=4, temperature=0.8, n=2, seed=11, stream=True,
        stream_options={"include_usage": True})]
    streamed: dict = {}
    for chunk in chunks:
        for choice in chunk.choices:
            streamed[choice.index] = streamed.get(choice.index, "") + choice.text
    out["completion_stream"] = {
        "chunks": len(chunks), "texts": [streamed[i] for i in sorted(streamed)],
        "finish_reasons": [c.finish_reason for c in chunks[-2].choices],
        "usage": chunks[-1].usage.model_dump() if chunks[-1].usage else None, "last_choices": len(chunks[-1].choices),
    }

    chat = validated(ChatCompletion, client.chat.completions.create(
        model=MODEL, messages=CHAT, max_tokens=5, temperature=0.8, n=2, seed=5, logprobs=True, top_logprobs=2))
    out["chat"] = {
        "object": chat.object, "roles": [c.message.role for c in chat.choices], "texts": [c.message.content for c in chat.choices],
        "indices": [c.index for c in chat.choices],
        "logprob_tokens_join": ["".join(t.token for t in c.logprobs.content) for c in chat.choices],
        "top_sizes": [sorted({len(t.top_logprobs) for t in c.logprobs.content}) for c in chat.choices],
        "bytes_ok": all(bytes(t.bytes).decode("utf-8", "replace") == t.token for c in chat.choices for t in c.logprobs.content if t.bytes),
        "usage": chat.usage.model_dump(),
    }

    single = validated(ChatCompletion, client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=5, temperature=0.8, seed=5))
    stream = [validated(ChatCompletionChunk, c) for c in client.chat.completions.create(
        model=MODEL, messages=CHAT, max_tokens=5, temperature=0.8, seed=5, stream=True, stream_options={"include_usage": True})]
    content = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    out["chat_stream"] = {
        "first_role": stream[0].choices[0].delta.role, "text": content, "unstreamed_text": single.choices[0].message.content,
        "finish_reason": next(c.choices[0].finish_reason for c in stream if c.choices and c.choices[0].finish_reason),
        "usage": stream[-1].usage.model_dump() if stream[-1].usage else None, "unstreamed_usage": single.usage.model_dump(),
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
            errors[name] = {"class": type(error).__name__, "status": error.status_code, "param": error.param,
                            "type": error.type, "message": error.message}
    out["errors"] = errors
    return out


def lm_eval_report() -> dict:
    from lm_eval.api.instance import Instance
    from lm_eval.api.registry import get_model

    lm = get_model("local-completions")(
        base_url=f"{BASE_URL}/completions", model=MODEL, tokenizer_backend="huggingface", tokenizer=MODEL_PATH,
        tokenized_requests=False, batch_size=2, max_retries=1, timeout=120, max_length=2048)
    ll = lm.loglikelihood([Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(LOGLIKELIHOOD)], disable_tqdm=True)
    gen = lm.generate_until(
        [Instance("generate_until", {}, (ctx, {"until": [stop], "max_gen_toks": MAX_GEN_TOKS}), i) for i, (ctx, stop) in enumerate(GENERATE)],
        disable_tqdm=True)
    return {"loglikelihood": [[float(x), bool(g)] for x, g in ll], "generate_until": gen}


def reference_report() -> dict:
    """The same requests, answered by transformers directly (no server involved)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(MODEL_PATH)
    model = AutoModelForCausalLM.from_pretrained(MODEL_PATH, dtype=torch.float32).eval()
    ll = []
    with torch.no_grad():
        for context, continuation in LOGLIKELIHOOD:
            ids = tok(context + continuation, return_tensors="pt").input_ids
            start = len(tok(context).input_ids)
            logprobs = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
            targets = ids[0, start:]
            rows = logprobs[start - 1 : ids.shape[1] - 1]
            picked = rows.gather(1, targets[:, None])[:, 0]
            ll.append([float(picked.sum()), bool((rows.argmax(-1) == targets).all())])
        gen = []
        for context, stop in GENERATE:
            ids = tok(context, return_tensors="pt").input_ids
            new = model.generate(ids, max_new_tokens=MAX_GEN_TOKS, do_sample=False, pad_token_id=tok.eos_token_id)[0, ids.shape[1]:]
            text = tok.decode(new, skip_special_tokens=True)
            gen.append(text.split(stop)[0])
    return {"loglikelihood": ll, "generate_until": gen}


def main() -> None:
    started = time.monotonic()
    if MODE == "reference":
        report = reference_report()
    else:
        client = OpenAI(base_url=BASE_URL, api_key=os.environ["OPENAI_API_KEY"], max_retries=0, timeout=120)
        report = {"sdk": sdk_report(client), "lm_eval": lm_eval_report()}
    report["seconds"] = round(time.monotonic() - started, 1)
    print("REPORT " + json.dumps(report))


if __name__ == "__main__":
    main()

"""The openai SDK's structured output against a tsserve chat route (run by test/e2e/structured-output.test.ts).

    python structured_clients.py BASE_URL MODEL_NAME      (OPENAI_API_KEY = the inference key)

Prints one line, ``REPORT {json}``: for 10 sampled requests through ``client.chat.completions.parse``
with a pydantic model as ``response_format`` (the SDK turns it into a strict JSON Schema), how many
came back parsed; ``json_object``; vLLM's ``guided_choice`` as an extra; an unsupported schema
(its status and message); and a request too short for its schema (the SDK's own length error).
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Literal

import openai
from openai import OpenAI
from pydantic import BaseModel, Field

BASE_URL, MODEL = sys.argv[1:3]


class Author(BaseModel):
    name: str = Field(max_length=40)
    born: int = Field(ge=1800, le=2010)


class BookReview(BaseModel):
    title: str = Field(max_length=60)
    genre: Literal["fiction", "science", "history", "poetry", "biography"]
    rating: int = Field(ge=1, le=5)
    tags: list[Annotated[str, Field(max_length=24)]] = Field(min_length=1, max_length=3)
    author: Author


def ask(topic: str) -> list[dict]:
    return [{"role": "user", "content": f"Review a book about {topic} as JSON: title, genre, rating 1-5, tags, author (name, born)."}]


TOPICS = ["the sea", "bread", "black holes", "the Alps", "bees", "chess", "jazz", "whales", "Egypt", "rain"]


def parse_review(client: OpenAI, seed: int) -> dict:
    completion = client.chat.completions.parse(
        # Every string is bounded, so 320 tokens always hold the whole object (SmolLM2 spends one token a character on odd text).
        model=MODEL,
        messages=ask(TOPICS[seed]),
        response_format=BookReview,
        max_tokens=320,
        temperature=0.7,
        seed=seed,
    )
    choice = completion.choices[0]
    return {
        "finish_reason": choice.finish_reason,
        "parsed": choice.message.parsed is not None,
        "valid": BookReview.model_validate_json(choice.message.content) == choice.message.parsed,
    }


def json_object(client: OpenAI) -> dict:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": 'Describe a cat as JSON with the keys "name" and "age".'}],
        response_format={"type": "json_object"},
        max_tokens=160,
        temperature=0,
        seed=0,
    )
    content = completion.choices[0].message.content or ""
    return {"finish_reason": completion.choices[0].finish_reason, "is_object": _is_object(content), "starts": content[:1]}


def guided_choice(client: OpenAI) -> str | None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Is the sky blue?"}],
        max_tokens=5,
        temperature=0,
        extra_body={"guided_choice": ["yes", "no"]},
    )
    return completion.choices[0].message.content


def unsupported(client: OpenAI) -> dict:
    bad = {
        "type": "json_schema",
        "json_schema": {"name": "bad", "schema": {"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}}},
    }
    try:
        client.chat.completions.create(model=MODEL, messages=ask("x"), response_format=bad, max_tokens=8)
        return {"status": 200}
    except openai.BadRequestError as error:
        return {"status": error.status_code, "message": error.body.get("message"), "param": error.body.get("param")}


def too_short(client: OpenAI) -> dict | str:
    try:
        client.chat.completions.parse(model=MODEL, messages=ask("y"), response_format=BookReview, max_tokens=6, temperature=0)
        return "parsed"
    except openai.LengthFinishReasonError as error:
        return {"error": "LengthFinishReasonError", "content": error.completion.choices[0].message.content}


def main() -> None:
    """Every request at once, as concurrent clients send them: the server batches them (one at a time took minutes)."""
    client = OpenAI(base_url=BASE_URL, max_retries=0, timeout=120)
    with ThreadPoolExecutor(max_workers=len(TOPICS) + 4) as pool:
        parsed = [pool.submit(parse_review, client, seed) for seed in range(len(TOPICS))]
        others = {
            name: pool.submit(check, client)
            for name, check in [
                ("json_object", json_object),
                ("guided_choice", guided_choice),
                ("unsupported", unsupported),
                ("too_short", too_short),
            ]
        }
        report = {"parse": [future.result() for future in parsed], **{name: future.result() for name, future in others.items()}}
    print("REPORT " + json.dumps(report), flush=True)


def _is_object(text: str | None) -> bool:
    try:
        return isinstance(json.loads(text or ""), dict)
    except json.JSONDecodeError:
        return False


if __name__ == "__main__":
    main()

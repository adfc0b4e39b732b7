"""Echo's prompt text_offset: positions in the prompt string, the way the
TypeScript side builds a choice's text (formatted prompt + completion)."""

from __future__ import annotations

from protocol_values import make_request

from tsserve_shim.engine.common.output import prompt_offsets

PROMPT = "[INST] <<SYS>>\n\n<</SYS>>\n\nAlan Turing was a"


def test_prompt_offsets_skip_the_bos_and_leading_space():
    # Token texts as the Llama tokenizer gives them: BOS, then a leading space the prompt does not have.
    strings = ["<s>", " [", "INST", "]", " Al", "an"]
    assert prompt_offsets("[INST] Alan", strings) == [0, 0, 1, 5, 6, 9]


def test_prompt_offsets_fall_back_to_the_joined_texts_when_they_do_not_end_with_the_prompt():
    assert prompt_offsets("xyz", ["<s>", "ab", "c"]) == [0, 3, 5]


def test_echo_offsets_point_at_each_token_in_the_prompt(engine):
    out = engine.generate([make_request(PROMPT, echo=True, max_tokens=0, logprobs=1)])[0]
    tokens, offsets = out["prompt"]["tokens"], out["prompt"]["text_offset"]
    assert tokens[:2] == ["<s>", " ["]
    assert offsets[:2] == [0, 0]
    for token, offset in list(zip(tokens, offsets))[2:]:
        assert PROMPT[offset : offset + len(token)] == token
    assert offsets[-1] + len(tokens[-1]) == len(PROMPT)


def test_generated_tokens_count_the_token_that_completed_a_stop(engine):
    """usage.completion_tokens counts what the engine generated, as vLLM does: the token that completed a
    stop sequence too, although the text and the token logprobs end before the stop."""
    [free] = engine.generate([make_request("Alan Turing was a", max_tokens=8)])[0]["sequences"]
    assert free["finish_reason"] == "length" and free["generated_tokens"] == len(free["logprobs"]["tokens"]) == 8
    tokens = free["logprobs"]["tokens"]
    stop_at = next(i for i in range(2, 8) if tokens[i] and tokens[i] not in "".join(tokens[:i]))  # a new text
    [cut] = engine.generate([make_request("Alan Turing was a", max_tokens=8, stop=[tokens[stop_at]])])[0]["sequences"]
    assert cut["finish_reason"] == "stop"
    assert cut["text"] == "".join(tokens[:stop_at])
    assert len(cut["logprobs"]["tokens"]) == stop_at  # the stop's own token is cut from the text and logprobs
    assert cut["generated_tokens"] == stop_at + 1  # but it was generated

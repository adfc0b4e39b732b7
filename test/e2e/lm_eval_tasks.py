"""lm-evaluation-harness's own evaluator (``simple_evaluate``) on the small local tasks in test/fixtures/lm-eval.

Used by openai_clients.py: its ``reference`` mode runs them on lm-eval's ``hf``
model in process (the reference), its ``clients`` mode on ``local-completions``
(token-id requests, the default, and text requests) and on
``local-chat-completions`` with ``apply_chat_template`` against the server.
Each run is summed up as plain JSON: per task its metrics and, per document in
order, what the model answered (a [loglikelihood, is_greedy] pair per choice,
or the generated text). Run from the repository root (the task files name
their data files relative to it), with HF_DATASETS_OFFLINE=1.
"""

from __future__ import annotations

import functools
import logging
import time

TASKS_DIR = "test/fixtures/lm-eval"
MULTIPLE_CHOICE = "tsserve_capitals_mc"
GENERATE = "tsserve_capitals_gen"
BATCH_SIZE = 4


@functools.cache
def task_manager():
    """Our tasks only: indexing lm-eval's thousands of built-in task files takes seconds per run."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=TASKS_DIR, include_defaults=False)


def evaluate(lm, tasks: list[str], *, chat: bool = False) -> dict:
    """One simple_evaluate run of ``lm`` (an LM object) on ``tasks``."""
    from lm_eval import simple_evaluate

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    results = simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=task_manager(),
        log_samples=True,
        apply_chat_template=chat,
        bootstrap_iters=0,
        verbosity="WARNING",
    )
    return {task: summary(results, task) for task in tasks}


def timed(runs: dict) -> dict:
    """Each run (a thunk) done in order, and the seconds each took under "seconds"."""
    out: dict = {"seconds": {}}
    for name, run in runs.items():
        started = time.monotonic()
        out[name] = run()
        out["seconds"][name] = round(time.monotonic() - started, 1)
    return out


def summary(results: dict, task: str) -> dict:
    metrics = {
        name.split(",")[0]: value
        for name, value in results["results"][task].items()
        if "," in name and not name.startswith("alias") and "_stderr" not in name
    }
    samples = sorted(results["samples"][task], key=lambda sample: sample["doc_id"])
    answers = [
        [answer if isinstance(answer, str) else [float(answer[0]), bool(answer[1])] for answer in sample["filtered_resps"]]
        for sample in samples
    ]
    return {"metrics": metrics, "answers": answers}


def reference(model_path: str) -> dict:
    """lm-eval's ``hf`` model in this process: both tasks, and the generate task with the chat template."""
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model_path, dtype="float32", device="cpu", batch_size=1)
    return timed({"plain": lambda: evaluate(lm, [MULTIPLE_CHOICE, GENERATE]), "chat": lambda: evaluate(lm, [GENERATE], chat=True)})


def served(base_url: str, model: str, model_path: str, api_key: str) -> dict:
    """The same runs against the server: token-id and text completions, and chat completions."""
    from lm_eval.api.registry import get_model

    common = dict(model=model, max_retries=1, timeout=120, max_length=2048)
    completions = get_model("local-completions")
    # lm-eval's defaults (tokenized_requests=True, tokenizer_backend="auto"): it finds the server's
    # tokenizer routes and tokenizes there; auth_token is what its probe sends (TorchServe's key).
    tokenized = completions(base_url=f"{base_url}/completions", auth_token=api_key, batch_size=BATCH_SIZE, **common)
    text = completions(
        base_url=f"{base_url}/completions",
        tokenized_requests=False,
        tokenizer_backend="huggingface",
        tokenizer=model_path,
        batch_size=BATCH_SIZE,
        **common,
    )
    chat = get_model("local-chat-completions")(base_url=f"{base_url}/chat/completions", **common)
    return {
        "tokenizer_backend": tokenized.tokenizer_backend,
        **timed(
            {
                "tokenized": lambda: evaluate(tokenized, [MULTIPLE_CHOICE, GENERATE]),
                "text": lambda: evaluate(text, [MULTIPLE_CHOICE, GENERATE]),
                "chat": lambda: evaluate(chat, [GENERATE], chat=True),
            }
        ),
    }

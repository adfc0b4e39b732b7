"""The tensor side: two engines behind one contract (contract.py), one chosen per model (registry.py).

- ``contract.py``: the Protocol the worker and the bridge call, and the typed GenerateRequest.
- ``common/``: what both engines use: prompts and their checks, rows, the output processor (texts, deltas,
  outcomes), prompt scores, incremental detokenization, stop sequences, deadlines, calls and their cancels,
  submit-and-wait, the sampling settings' meaning, the ``structured`` kinds. It imports neither engine.
- ``transformers/``: tsserve's own engine on a transformers model, in vLLM v1's split: a scheduler that
  decides who runs each step, a model runner that does the forwards, one decode loop (core) driving them,
  the running batch and its KV cache, the KV budget, the prefix cache, sampling, xgrammar masking.
- ``vllm/``: vLLM's async engine behind the same contract: its engine arguments and its structured outputs.

``vllm/`` imports nothing from ``transformers/`` and the other way round. Import from the modules.
"""

"""The tensor side: two engines behind one contract (contract.py), one chosen per model (registry.py).

- ``common/``: what both engines use: prompts and their checks, rows, output processing, incremental
  detokenization, stop sequences, deadlines, submit-and-wait, the sampling settings' meaning, the
  ``structured`` kinds. It imports neither engine.
- ``transformers/``: tsserve's own engine on a transformers model: one decode loop (scheduler) over a
  model runner (prefill, decode step), the running batch and its KV cache, the KV budget, the prefix
  cache, sampling, xgrammar masking.
- ``vllm/``: vLLM's async engine behind the same contract: its engine arguments and its structured outputs.

``vllm/`` imports nothing from ``transformers/`` and the other way round. Import from the modules.
"""

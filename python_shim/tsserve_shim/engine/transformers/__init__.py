"""The transformers engine: one decode loop (scheduler) over a model runner (prefill, decode step),
with the running batch and its KV cache, the KV budget, the prefix cache, sampling and xgrammar
masking. Nothing here imports the vLLM engine. Import from the modules."""

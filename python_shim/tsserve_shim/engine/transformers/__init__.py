"""The transformers engine, in vLLM v1's split: the scheduler decides who runs each step (plain data), the
model runner does every forward (prefill, decode step) and returns plain step output, the decode loop
(core.py) drives them and hands the step output to common/output.py's processor; with the running batch
and its KV cache, the KV budget, the prefix cache, sampling and xgrammar masking. Nothing here imports
the vLLM engine. Import from the modules."""

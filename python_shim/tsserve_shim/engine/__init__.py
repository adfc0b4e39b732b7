"""The tensor side: one decode loop (scheduler) over a model runner (prefill, decode step),
with rows, the running batch, output processing and sampling. Import from the modules."""

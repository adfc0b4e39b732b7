"""The vLLM engine: vLLM's async engine behind the engine contract, its engine arguments and its
structured outputs. Nothing here imports the transformers engine. Import from the modules."""

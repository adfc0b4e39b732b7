"""What both engines use (the transformers engine and the vLLM engine); nothing here imports either.
Import from the modules."""

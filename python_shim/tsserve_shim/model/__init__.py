"""Loading a model as its config says: files, dtype, device placement, quantization."""

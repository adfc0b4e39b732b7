"""tsserve's Python shim: the TorchServe handler that bridges to a Node handler bundle."""

"""The TorchServe side: the handler TorchServe loads, request decoding, replies, KServe envelopes, the handle timeout."""

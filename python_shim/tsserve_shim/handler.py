"""The entry point that generated shim modules import (`from tsserve_shim.handler import TsserveHandler`)."""

from .worker.handler import TsserveHandler

__all__ = ["TsserveHandler"]

"""Structured output on the vLLM engine: a GenerateRequest's ``structured`` as vLLM's
StructuredOutputsParams, with the same grammars as the transformers engine (both use xgrammar, vLLM's
default backend, so both accept the same schemas and write JSON the same way)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..common.structured import structure_kind


def vllm_structured_outputs(structured: Mapping[str, Any] | None):
    """vLLM's StructuredOutputsParams for a GenerateRequest's ``structured`` (None: free text), with
    the same grammars as the transformers engine (``json_object``: any JSON object)."""
    if structured is None:
        return None
    from vllm.sampling_params import StructuredOutputsParams

    kind = structure_kind(structured)
    if kind == "json_schema":
        return StructuredOutputsParams(json=structured["json_schema"])
    if kind == "json_object":
        return StructuredOutputsParams(json_object=True)
    if kind == "regex":
        return StructuredOutputsParams(regex=str(structured["regex"]))
    return StructuredOutputsParams(choice=[str(choice) for choice in structured["choice"]])

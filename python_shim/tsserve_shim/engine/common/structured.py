"""Structured output as both engines read it: a GenerateRequest's ``structured`` holds exactly one of
KINDS (a JSON Schema, any JSON object, a regex or a list of choices). The transformers engine
constrains to it with xgrammar (transformers/grammar.py), the vLLM engine through vLLM's structured
outputs (vllm/structured.py); one the engine cannot constrain to is a StructureError (a 400)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

KINDS = ("json_schema", "json_object", "regex", "choice")


class StructureError(ValueError):
    """A ``structured`` the engine cannot constrain to (its request is answered 400)."""


def structure_kind(structured: Mapping[str, Any]) -> str:
    kinds = [kind for kind in KINDS if kind in structured]
    if len(kinds) != 1:
        raise StructureError(f"structured must have exactly one of {', '.join(KINDS)}, got {sorted(structured)}")
    return kinds[0]

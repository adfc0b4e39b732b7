"""What the engine needs to know about the installed transformers: whether it is a version the
engine is tested on, and under which name the model's ``forward`` takes its KV cache.

transformers 5.24 renamed ``forward(past_key_values=...)`` to ``forward(cache=...)``. A name the
model does not take lands in its ``**kwargs`` and is ignored, so every decode step would silently
start from an empty cache: the name is read from the loaded model's own signature instead.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

# The oldest and newest transformers the engine's parity tests run on (CI: the venv's and the
# folders scripts/setup.sh installs from python_shim/requirements-transformers-range.txt).
OLDEST_TESTED = (5, 17)
NEWEST_TESTED = (5, 24)
CACHE_KEYWORDS = ("cache", "past_key_values")


class UnsupportedTransformersError(RuntimeError):
    pass


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def tested_range() -> str:
    return f"{OLDEST_TESTED[0]}.{OLDEST_TESTED[1]} to {NEWEST_TESTED[0]}.{NEWEST_TESTED[1]}"


def check_transformers_version(version: str | None = None) -> str:
    """The installed transformers' version; raises when it is outside the tested range."""
    if version is None:
        import transformers

        version = transformers.__version__
    if not OLDEST_TESTED <= _minor(version) <= NEWEST_TESTED:
        raise UnsupportedTransformersError(
            f"tsserve's transformers engine is tested on transformers {tested_range()}, and this Python has "
            f"transformers {version}: install one in that range (pip install 'transformers>={OLDEST_TESTED[0]}."
            f"{OLDEST_TESTED[1]},<{NEWEST_TESTED[0]}.{NEWEST_TESTED[1] + 1}') or serve with handler.engine: vllm"
        )
    return version


def installed_keyword() -> str:
    """The name the installed transformers' own models use."""
    import transformers

    return "cache" if _minor(transformers.__version__) >= (5, 24) else "past_key_values"


@functools.cache
def _keyword_of(forward) -> str:
    parameters = inspect.signature(forward).parameters
    for name in CACHE_KEYWORDS:
        if name in parameters:
            return name
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return installed_keyword()  # a wrapper's forward(*args, **kwargs) passes it on to a transformers model
    raise UnsupportedTransformersError(
        f"{getattr(forward, '__qualname__', forward)} takes no KV cache argument ({' or '.join(CACHE_KEYWORDS)}): "
        "the transformers engine cannot decode with it"
    )


def cache_keyword(model) -> str:
    """The name under which ``model.forward`` takes its KV cache."""
    return _keyword_of(type(model).forward)


def forward_with_cache(model, cache, **inputs: Any):
    """``model(**inputs)`` with ``cache`` passed under the model's own name: (output, the cache after it)."""
    out = model(**inputs, **{cache_keyword(model): cache}, use_cache=True)
    after = getattr(out, "cache", None)
    if after is None:
        after = getattr(out, "past_key_values", None)
    return out, after if after is not None else cache

"""The name transformers gives the key/value cache, on every release qfsum supports.

transformers 5.24 renamed the `past_key_values` argument and output field to `cache`; older 5.x
releases only know `past_key_values`. A model that reads only one name silently decodes without its
cache on the other release (each step then sees one token and no past), so the code here reads both
and writes the one the installed release expects.
"""

from __future__ import annotations

from typing import Any

from transformers.modeling_outputs import Seq2SeqLMOutput

CACHE_NAME: str = "cache" if "cache" in Seq2SeqLMOutput.__dataclass_fields__ else "past_key_values"
"""The keyword `forward()` receives and model outputs carry the cache under, on this release."""


def pick_cache(cache: Any = None, past_key_values: Any = None) -> Any:
    """The cache a caller passed under either name (both at once is a caller's bug)."""
    if cache is not None and past_key_values is not None:
        raise ValueError("pass the key/value cache as `cache` or `past_key_values`, not both")
    return cache if cache is not None else past_key_values


def cache_kwarg(cache: Any) -> dict[str, Any]:
    """`{name: cache}` under the name this release's models and outputs expect."""
    return {CACHE_NAME: cache}


def output_cache(output: Any) -> Any:
    """The cache a model output carries, read without the deprecation warning of the old name."""
    return getattr(output, CACHE_NAME, None)

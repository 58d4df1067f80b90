"""Answer lengths per item: one batch of queries may ask for different lengths (the HTTP API's
`options.words`), without touching the writer's shared config.

A model writer turns a length in words into a limit on new tokens (`answer_tokens`) and runs each
group of equal limits as its own `generate()` calls (`groups`); the extractive writer uses the words
as its budget directly.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

from ..errors import QfsumError
from .base import TOKENS_PER_WORD, WriterConfig

# One length for every item, one per item (None: the writer's own), or None: the writer's own for all.
Words = int | Sequence[int | None] | None


def per_item(words: Words, count: int) -> list[int | None] | None:
    """One length (or None) per item; None when no item asks for a length of its own."""
    if words is None:
        return None
    lengths = [words] * count if isinstance(words, int) else list(words)
    if len(lengths) != count:
        raise QfsumError(f"words: {len(lengths)} lengths for {count} queries")
    for length in lengths:
        # bool is an int to Python, never a length
        if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 1):
            raise QfsumError(f"words must be a whole number >= 1, got {length!r}")
    return lengths if any(length is not None for length in lengths) else None


def answer_tokens(config: WriterConfig, words: int | None) -> int:
    """A model writer's limit on new tokens for an answer of about `words` words (the config's when None)."""
    return math.ceil(words * TOKENS_PER_WORD) if words else config.new_tokens()


def groups(keys: Sequence[Hashable], size: int) -> list[list[int]]:
    """Positions grouped by equal key (groups in order of first appearance, positions in order), each
    group cut into chunks of at most `size`: the model calls of a batch whose items share a length."""
    by_key: dict[Hashable, list[int]] = {}
    for position, key in enumerate(keys):
        by_key.setdefault(key, []).append(position)
    size = max(size, 1)
    return [positions[i : i + size] for positions in by_key.values() for i in range(0, len(positions), size)]

"""Extractive writer: the best segments under a word budget, in document order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..budget import WordCounter, select_under_budget
from ..document import Draft, Evidence

if TYPE_CHECKING:
    from .base import WriterConfig


class ExtractiveWriter:
    """Shows the most relevant segments verbatim, at most `budget` words, in document order."""

    def __init__(self, budget: int = 100) -> None:
        self.budget = budget
        self.counter = WordCounter()

    def write_batch(self, queries: Sequence[str], ranked: Sequence[Sequence[Evidence]]) -> list[Draft]:
        drafts = []
        for items in ranked:
            chosen = select_under_budget(items, self.budget, self.counter)
            drafts.append(Draft("\n".join(e.segment.text for e in chosen), chosen))
        return drafts


def build_extractive_writer(config: "WriterConfig") -> ExtractiveWriter:
    """The registry's factory: `budget` is in summary words (default 100)."""
    return ExtractiveWriter(config.summary_words or 100)

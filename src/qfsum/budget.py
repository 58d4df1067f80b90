"""Token budgets: counting and cutting text, and choosing ranked evidence that fits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from .document import Segment
from .generation.draft import Evidence


class TokenCounter(Protocol):
    """Measures text in some unit (words, model tokens) and cuts it to a length."""

    def count(self, text: str) -> int: ...

    def truncate(self, text: str, budget: int) -> str: ...


class WordCounter:
    """Whitespace-separated words."""

    def count(self, text: str) -> int:
        return len(text.split())

    def truncate(self, text: str, budget: int) -> str:
        """The first `budget` words, keeping the original spacing between them."""
        end = 0
        for i, word in enumerate(text.split()):
            if i == budget:
                break
            end = text.index(word, end) + len(word)
        return text[:end]


class TokenizerCounter:
    """Tokens of a Hugging Face (fast) tokenizer, without special tokens.

    A segment is counted with the newline that joins it to the next, as it appears in a prompt.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def count(self, text: str) -> int:
        return len(self.tokenizer(text + "\n", add_special_tokens=False)["input_ids"])

    def truncate(self, text: str, budget: int) -> str:
        offsets = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        offsets = offsets[: max(budget - 1, 0)]  # one token is kept for the joining newline
        return text[: offsets[-1][1]] if offsets else ""


def _cut(item: Evidence, text: str) -> Evidence:
    seg = item.segment
    return Evidence(Segment(seg.index, text, seg.start, seg.start + len(text), seg.speaker), item.score)


def select_under_budget(ranked: Sequence[Evidence], budget: int, counter: TokenCounter) -> list[Evidence]:
    """Take segments in rank order while they fit in `budget`; return them in document order.

    A segment that does not fit is skipped and later (shorter) ones may still be taken. If not
    even one fits whole, the best segment is cut to the budget, so a writer never gets empty
    evidence for a non-empty document. Segments scored -inf are excluded.
    """
    chosen: list[Evidence] = []
    used = 0
    usable = [item for item in ranked if item.score != float("-inf")]
    for item in usable:
        size = counter.count(item.segment.text)
        if used + size <= budget:
            chosen.append(item)
            used += size
            if used == budget:
                break
    if not chosen and usable:
        chosen = [_cut(usable[0], counter.truncate(usable[0].segment.text, budget))]
    return sorted(chosen, key=lambda e: e.segment.start)


def truncate_ranked(ranked: Sequence[Evidence], budget: int, counter: TokenCounter) -> list[Evidence]:
    """Concatenate segments in rank order and cut at exactly `budget` (the last one partially).

    This is the "all segments ranked, then truncated" selection of extractor evaluation.
    Returned in document order.
    """
    chosen: list[Evidence] = []
    used = 0
    for item in ranked:
        if item.score == float("-inf") or used >= budget:
            break
        size = counter.count(item.segment.text)
        if used + size > budget:
            text = counter.truncate(item.segment.text, budget - used)
            if text:
                chosen.append(_cut(item, text))
            break
        chosen.append(item)
        used += size
    return sorted(chosen, key=lambda e: e.segment.start)

"""Token budgets: counting and cutting text, and choosing ranked evidence that fits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from .document import Segment
from .generation.draft import Evidence
from .text import count_words


class TokenCounter(Protocol):
    """Measures text in some unit (words, model tokens) and cuts it to a length."""

    def count(self, text: str) -> int: ...

    def truncate(self, text: str, budget: int) -> str: ...


class WordCounter:
    """Whitespace-separated words."""

    def count(self, text: str) -> int:
        return count_words(text)

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
        """The longest prefix cut at a token boundary whose `count` fits in `budget`."""
        offsets = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        # Byte-level tokenizers give several tokens one character's offsets (emoji, CJK), so the
        # first guess can re-encode a little longer: step back until it fits.
        for n in range(min(budget - 1, len(offsets)), 0, -1):
            prefix = text[: offsets[n - 1][1]]
            if self.count(prefix) <= budget:
                return prefix
        return ""


def _cut(item: Evidence, text: str) -> Evidence:
    seg = item.segment
    return Evidence(Segment(seg.index, text, seg.start, seg.start + len(text), seg.speaker), item.score)


def select_under_budget(
    ranked: Sequence[Evidence], budget: int, counter: TokenCounter, cut_last: bool = False
) -> list[Evidence]:
    """Take segments in rank order until the next one does not fit in `budget`; document order out.

    With `cut_last`, the segment that does not fit is cut to fill the budget exactly (the
    "ranked, then truncated" selection); without it, it is left out, except when nothing was
    taken yet: then the best segment is cut, so a writer never gets empty evidence. Segments
    scored -inf are excluded.
    """
    chosen: list[Evidence] = []
    used = 0
    for item in ranked:
        if item.score == float("-inf") or used >= budget:
            break
        size = counter.count(item.segment.text)
        if used + size > budget:
            if cut_last or not chosen:
                text = counter.truncate(item.segment.text, budget - used)
                if text:
                    chosen.append(_cut(item, text))
            break
        chosen.append(item)
        used += size
    return sorted(chosen, key=lambda e: e.segment.start)

"""Token budgets: counting and cutting text, and choosing ranked evidence that fits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from .document import Evidence
from .text import count_words

if TYPE_CHECKING:  # annotations only: transformers loads when a model does
    from transformers import PreTrainedTokenizerBase


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

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
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


def _piece(item: Evidence, start: int, end: int) -> Evidence:
    """The part of `item` between document offsets `start` and `end`, with the same score."""
    seg = item.segment
    text = seg.text[start - seg.start : end - seg.start]
    return Evidence(replace(seg, text=text, start=start, end=end), item.score)  # replace: keeps speaker and pages


def _uncovered(item: Evidence, taken: Sequence[tuple[int, int]]) -> list[Evidence]:
    """The parts of `item` that no taken (start, end) span covers; `taken` is sorted and disjoint."""
    pieces, at, end = [], item.segment.start, item.segment.end
    for a, b in taken:
        if b <= at or a >= end:
            continue
        if a > at:
            pieces.append(_piece(item, at, a))
        at = max(at, b)
    if at < end:
        pieces.append(_piece(item, at, end))
    return pieces


def _merge_touching(chosen: list[Evidence]) -> list[Evidence]:
    """Document order, with pieces that touch (`a.end == b.start`, e.g. overlapping windows) joined;
    blank pieces left alone are dropped."""
    merged: list[Evidence] = []
    for item in sorted(chosen, key=lambda e: e.segment.start):
        if merged and merged[-1].segment.end == item.segment.start:
            last = merged[-1].segment
            joined = replace(last, text=last.text + item.segment.text, end=item.segment.end)
            merged[-1] = Evidence(joined, max(merged[-1].score, item.score))
        else:
            merged.append(item)
    return [e for e in merged if e.segment.text.strip()]


def select_under_budget(
    ranked: Sequence[Evidence], budget: int, counter: TokenCounter, cut_last: bool = False
) -> list[Evidence]:
    """Take segments in rank order until the next one does not fit in `budget`; document order out.

    With `cut_last`, the segment that does not fit is cut to fill the budget exactly (the
    "ranked, then truncated" selection); without it, it is left out, except when nothing was
    taken yet: then the best segment is cut, so a writer never gets empty evidence. Segments
    scored -inf are excluded.

    Overlapping segments (windows with a stride) cost only their text not taken yet, and
    the pieces that touch come out joined into one span, so no text is paid for or shown twice.
    """
    chosen: list[Evidence] = []
    taken: list[tuple[int, int]] = []
    used = 0
    for item in ranked:
        if item.score == float("-inf") or used >= budget:
            break
        for piece in _uncovered(item, taken):
            # a blank piece (the space between two taken windows) is free: it only joins them
            size = counter.count(piece.segment.text) if piece.segment.text.strip() else 0
            if used + size > budget:
                if cut_last or not chosen:
                    text = counter.truncate(piece.segment.text, budget - used)
                    if text:
                        chosen.append(_piece(piece, piece.segment.start, piece.segment.start + len(text)))
                return _merge_touching(chosen)
            chosen.append(piece)
            used += size
            taken = sorted(taken + [(piece.segment.start, piece.segment.end)])
    return _merge_touching(chosen)

"""Evidence against gold spans, at the level of the document's units (QMSum speaker turns)."""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from ..document import Document, Example, Segment
from ..segment import has_content


def covered_units(document: Document, segments: Iterable[Segment]) -> set[int]:
    """Indices of the units with content that the segments overlap (by character offsets)."""
    units = document.units
    starts = [u.start for u in units]
    covered: set[int] = set()
    for seg in segments:
        i = max(bisect.bisect_right(starts, seg.start) - 1, 0)
        while i < len(units) and units[i].start < seg.end:
            if units[i].end > seg.start and has_content(units[i]):
                covered.add(i)
            i += 1
    return covered


def gold_units(example: Example) -> set[int]:
    """Gold unit indices, leaving out units with no content (they can never be retrieved)."""
    units = example.document.units
    return {i for i in example.gold_units() if i < len(units) and has_content(units[i])}


def span_precision_recall(example: Example, segments: Iterable[Segment]) -> tuple[float, float] | None:
    """(precision, recall) of the selected units against the gold ones; None without gold spans."""
    gold = gold_units(example)
    if not gold:
        return None
    selected = covered_units(example.document, segments)
    hits = len(selected & gold)
    return (hits / len(selected) if selected else 0.0), hits / len(gold)

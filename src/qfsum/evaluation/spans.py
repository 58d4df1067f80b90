"""Evidence against gold spans, two ways.

Unit level (`span_precision_recall`): the share of the selected units (QMSum speaker turns,
paragraphs) that lie in a gold span, and the share of gold units selected. Span level
(`gold_span_recall`): the share of gold spans that the selection touches at all, as the seed paper's
GOLD row (recall 1.00) reads.
"""

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


def gold_span_recall(example: Example, segments: Iterable[Segment]) -> float | None:
    """Share of the gold spans (with content) that the segments touch; None without gold spans."""
    units = example.document.units
    spans = [{i for i in range(lo, hi + 1) if i < len(units) and has_content(units[i])} for lo, hi in example.spans]
    spans = [span for span in spans if span]
    if not spans:
        return None
    selected = covered_units(example.document, segments)
    return sum(bool(span & selected) for span in spans) / len(spans)

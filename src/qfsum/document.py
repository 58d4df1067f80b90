"""The data model: documents, their segments, evidence and drafts, and evaluation examples."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .text import require_unicode


@dataclass(frozen=True)
class Segment:
    """A contiguous piece of a document, with its character offsets in the source text.

    `text == document.text[start:end]`, always: readers clean the source before they build the
    document (QMSum markup removed, a speaker turn written "Speaker: text"), so what scorers and
    writers read is exactly the span the answer's evidence points at.
    """

    index: int  # position in the document's segment list
    text: str
    start: int  # character offset of the span in Document.text (inclusive)
    end: int  # character offset (exclusive)
    speaker: str | None = None


@dataclass
class Document:
    """A source text plus, optionally, its natural units (speaker turns, paragraphs).

    `units` are what the reader knows about the structure; segmenters may use them ("turn") or
    split the text their own way ("sentence", "window").
    """

    text: str
    units: list[Segment] = field(default_factory=list)
    id: str = "document"

    def __post_init__(self) -> None:
        require_unicode(self.text, self.id)  # unit texts and speakers are spans of, or joined into, the text

    @property
    def fingerprint(self) -> str:
        """A stable hash of the text, used to cache per-document work (embeddings, indexes)."""
        return hashlib.sha1(self.text.encode("utf-8")).hexdigest()

    @classmethod
    def from_units(cls, units: list[tuple[str | None, str]], id: str = "document") -> "Document":
        """Build a document from (speaker, text) units, one per line: "Speaker: text".

        Each unit becomes a segment whose offsets point at its line in the joined text.
        """
        parts: list[str] = []
        segments: list[Segment] = []
        offset = 0
        for i, (speaker, text) in enumerate(units):
            line = f"{speaker}: {text}" if speaker else text
            segments.append(Segment(i, line, offset, offset + len(line), speaker))
            parts.append(line)
            offset += len(line) + 1  # the joining newline
        return cls("\n".join(parts), segments, id)


@dataclass(frozen=True)
class Evidence:
    """A segment chosen as evidence, with its relevance score."""

    segment: Segment
    score: float

    def to_dict(self) -> dict:
        s = self.segment
        return {"segment": s.index, "score": round(float(self.score), 6), "start": s.start, "end": s.end, "text": s.text}


@dataclass
class Draft:
    """A writer's output: the summary and the evidence it was written from (document order)."""

    text: str
    evidence: list[Evidence] = field(default_factory=list)


@dataclass
class Example:
    """One evaluation item: a document, a query, reference summaries, and gold evidence."""

    id: str
    document: Document
    query: str
    references: list[str] = field(default_factory=list)
    # Gold evidence as inclusive ranges of unit indices, as QMSum's relevant_text_span.
    spans: list[tuple[int, int]] = field(default_factory=list)

    def gold_units(self) -> set[int]:
        """The set of unit indices covered by the gold spans."""
        return {i for lo, hi in self.spans for i in range(lo, hi + 1)}

"""The data model: documents, their segments, evidence and drafts, and evaluation examples."""

from __future__ import annotations

import hashlib
from bisect import bisect_right
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
    # Paged sources (PDF): where each page starts in Document.text, shared with the document, so the
    # page follows the offsets through every split and merge (see `page`).
    page_starts: tuple[int, ...] = field(default=(), repr=False, compare=False)

    @property
    def page(self) -> int | None:
        """The page (1-based) the segment starts on; None for sources without pages."""
        return bisect_right(self.page_starts, self.start) if self.page_starts else None

    @property
    def last_page(self) -> int | None:
        """The page (1-based) the segment ends on; None for sources without pages."""
        return bisect_right(self.page_starts, max(self.end - 1, self.start)) if self.page_starts else None


@dataclass
class Document:
    """A source text plus, optionally, its natural units (speaker turns, paragraphs).

    `units` are what the reader knows about the structure; segmenters may use them ("turn") or
    split the text their own way ("sentence", "window").
    """

    text: str
    units: list[Segment] = field(default_factory=list)
    id: str = "document"
    page_starts: tuple[int, ...] = ()  # paged sources (PDF): offset in `text` where each page starts

    def page_at(self, offset: int) -> int | None:
        """The page (1-based) holding character `offset`; None for sources without pages."""
        return bisect_right(self.page_starts, offset) if self.page_starts else None

    def __post_init__(self) -> None:
        require_unicode(self.text, self.id)  # unit texts and speakers are spans of, or joined into, the text

    @property
    def fingerprint(self) -> str:
        """A stable hash of the text, used to cache per-document work (embeddings, indexes)."""
        digest = hashlib.sha1(self.text.encode("utf-8"))
        if self.page_starts:  # same text, other pages: segments (which carry pages) must not be shared
            digest.update(repr(self.page_starts).encode())
        return digest.hexdigest()

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
        data = {"segment": s.index, "score": round(float(self.score), 6), "start": s.start, "end": s.end, "text": s.text}
        if s.page is not None:  # paged sources only: other outputs keep their keys
            data["page"] = s.page
            if s.last_page != s.page:
                data["last_page"] = s.last_page
        return data


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

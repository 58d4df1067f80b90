"""What a writer returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..document import Segment


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

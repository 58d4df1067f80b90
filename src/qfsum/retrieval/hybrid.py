"""Hybrid scorer: reciprocal-rank fusion of several scorers (Cormack et al., 2009)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..document import Segment
from .base import Scorer, rank


class HybridScorer:
    """RRF: score(d) = sum over scorers of 1 / (k + rank(d)), ranks starting at 1."""

    def __init__(self, scorers: list[Scorer], k: int = 60) -> None:
        self.scorers, self.k = scorers, k

    def score(self, query: str, segments: Sequence[Segment]) -> np.ndarray:
        fused = np.zeros(len(segments), dtype=np.float64)
        for scorer in self.scorers:
            ranks = np.empty(len(segments), dtype=np.float64)
            ranks[rank(scorer.score(query, segments))] = np.arange(1, len(segments) + 1)
            fused += 1.0 / (self.k + ranks)
        return fused.astype(np.float32)

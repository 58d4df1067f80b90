"""The scorer protocol, its config, and ranking by score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..document import Segment


class Scorer(Protocol):
    """Scores every segment of one document for a query."""

    def score(self, query: str, segments: Sequence[Segment]) -> np.ndarray:
        """Return a float array of shape (len(segments),); higher is more relevant."""
        ...


@dataclass
class ScorerConfig:
    """Which scorer to build."""

    kind: str = "hybrid"  # lead | bm25 | dense | hybrid | relreg (a cross-encoder)
    model: str = "minilm"  # dense, hybrid, relreg: sentence-transformers model name, directory or hub id
    rrf_k: int = 60  # hybrid: the k of reciprocal-rank fusion, 1 / (k + rank)
    batch_size: int = 32  # dense, relreg: segments per encoder batch (batches are formed by length)
    dtype: str = "auto"  # dense, relreg: auto (bf16 autocast where the hardware has it) or float32


def rank(scores: np.ndarray) -> np.ndarray:
    """Segment indices from most to least relevant; ties keep document order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")

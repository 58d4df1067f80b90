"""Relevance scorers: every scorer gives one score per segment for a query (higher = more relevant)."""

from .base import Scorer, ScorerConfig, rank
from .registry import best_similarity, build_scorer

__all__ = ["Scorer", "ScorerConfig", "best_similarity", "build_scorer", "rank"]

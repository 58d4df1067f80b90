"""Relevance scorers: every scorer gives one score per segment for a query (higher = more relevant)."""

from .base import Scorer, ScorerConfig, build_scorer, rank, segments_key

__all__ = ["Scorer", "ScorerConfig", "build_scorer", "rank", "segments_key"]

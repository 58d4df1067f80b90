"""Evaluation: ROUGE of summaries, extractor metrics, and the runners behind `qfsum evaluate`."""

from .rouge import ROUGE_KEYS, mean_scores, rouge

__all__ = ["ROUGE_KEYS", "mean_scores", "rouge"]

"""Validation during extractor training: the extractor metrics of `qfsum evaluate-extractor`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sentence_transformers.base.evaluation import BaseEvaluator
from tqdm.auto import tqdm

from ...budget import TokenCounter
from ...document import Evidence, Example, Segment
from ...evaluation.extractor import aggregate, example_metrics
from ...retrieval import rank
from ...segment import Segmenter, SegmenterConfig

PRIMARY_METRIC = "top1_rouge1"  # the best checkpoint is the one with the highest top-1 ROUGE-1
REPORTED = ("top1_rouge1", "top1_rouge2", "top5_rouge1", "topall_rouge1", "span_precision", "span_recall")


def scorer_for(model: Any, batch_size: int = 32, dtype: str = "auto") -> Any:
    """A qfsum scorer around an in-memory sentence-transformers model (cross- or bi-encoder)."""
    from sentence_transformers import CrossEncoder

    from ...retrieval.cross import CrossEncoderScorer
    from ...retrieval.dense import DenseScorer

    if isinstance(model, CrossEncoder):
        return CrossEncoderScorer(batch_size=batch_size, dtype=dtype, encoder=model)
    return DenseScorer(batch_size=batch_size, dtype=dtype, encoder=model)


class ExtractorEvaluator(BaseEvaluator):
    """Ranks the segments of validation examples with the model being trained and returns the means of
    `qfsum.evaluation.extractor.example_metrics` (top-k ROUGE, span precision/recall, x 100).

    Its primary metric, `top1_rouge1`, picks the best checkpoint.
    """

    def __init__(
        self,
        examples: Sequence[Example],
        segmenter: SegmenterConfig,
        counter: TokenCounter,
        budget: int = 1024,
        batch_size: int = 32,
        dtype: str = "auto",
        progress: bool = False,
    ) -> None:
        super().__init__()
        self.examples = list(examples)
        self.counter, self.budget = counter, budget
        self.batch_size, self.dtype, self.progress = batch_size, dtype, progress
        self.primary_metric = PRIMARY_METRIC
        self.greater_is_better = True
        segment = Segmenter(segmenter)
        self._segments: dict[int, list[Segment]] = {}
        for example in self.examples:
            if id(example.document) not in self._segments:
                self._segments[id(example.document)] = segment(example.document)

    def __call__(self, model: Any, output_path: str | None = None, epoch: float = -1, steps: int = -1) -> dict[str, float]:
        scorer = scorer_for(model, self.batch_size, self.dtype)  # new each time: its caches hold old weights
        rows = []
        for example in tqdm(self.examples, desc="validate", unit="ex", leave=False, disable=not self.progress):
            segments = self._segments[id(example.document)]
            scores = scorer.score(example.query, segments)
            ranked = [Evidence(segments[i], float(scores[i])) for i in rank(scores)]
            rows.append(example_metrics(example, ranked, self.budget, self.counter))
        metrics = aggregate(rows)
        return {key: float(metrics[key]) for key in REPORTED if key in metrics}

"""Training pairs for extractors, built from relevance labels.

Regression extractors (RelReg, RelRegTT) learn from (query, segment, label) pairs; DPR learns from
(query, positive, hard negative) triples. A QMSum training query has hundreds of segments, most of
them barely related, so non-positive pairs are subsampled and the total can be capped; the
sampling is seeded, so the same config always gives the same pairs (which resuming relies on).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...document import Example, Segment
from ...errors import QfsumError
from ...retrieval.lexical import BM25Scorer

HARD_NEGATIVES = ("bm25", "label", "random")


@dataclass
class PairConfig:
    """Which pairs to train on."""

    positive_threshold: float = 0.1  # a segment is a positive when its label is at least this ...
    max_positives: int = 5  # ... and it is among the query's best `max_positives` by label
    negatives_per_positive: float | None = 4.0  # regression: other pairs kept per positive; None = all of them
    hard_negatives: str = "bm25"  # dpr: bm25 (best BM25 match), label (highest label), or random, among negatives
    negative_ceiling: float | None = None  # dpr: negatives have a label below this; None = positive_threshold / 2
    max_pairs: int | None = None  # at most this many pairs (triples for dpr), sampled uniformly; None = all
    seed: int = 0

    def __post_init__(self) -> None:
        if self.hard_negatives not in HARD_NEGATIVES:
            raise QfsumError(f"unknown hard negatives '{self.hard_negatives}' (choose from {', '.join(HARD_NEGATIVES)})")
        if self.max_positives < 1:
            raise QfsumError(f"max positives must be >= 1, got {self.max_positives}")
        if self.negatives_per_positive is not None and self.negatives_per_positive < 0:
            raise QfsumError(f"negatives per positive must be >= 0, got {self.negatives_per_positive}")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise QfsumError(f"--max-pairs must be >= 1, got {self.max_pairs}")


@dataclass
class Labelled:
    """One training query: its example, the document's segments and one label per segment."""

    example: Example
    segments: Sequence[Segment]
    labels: np.ndarray


def positives(labels: np.ndarray, config: PairConfig) -> np.ndarray:
    """Indices of the positives: the best `max_positives` segments whose label reaches the threshold."""
    order = np.argsort(-labels, kind="stable")[: config.max_positives]
    return order[labels[order] >= config.positive_threshold]


def _cap(columns: dict[str, list], limit: int | None, rng: np.random.Generator) -> dict[str, list]:
    size = len(next(iter(columns.values())))
    if limit is None or size <= limit:
        return columns
    keep = np.sort(rng.choice(size, limit, replace=False))
    return {name: [values[i] for i in keep] for name, values in columns.items()}


def regression_pairs(items: Sequence[Labelled], config: PairConfig) -> dict[str, list]:
    """Columns `query`, `passage`, `label`: every positive, and per query up to
    `negatives_per_positive` x max(positives, 1) of its other segments drawn at random."""
    rng = np.random.default_rng(config.seed)
    columns: dict[str, list] = {"query": [], "passage": [], "label": []}
    for item in items:
        chosen = positives(item.labels, config)
        others = np.setdiff1d(np.arange(len(item.segments)), chosen)
        if config.negatives_per_positive is not None:
            wanted = int(round(config.negatives_per_positive * max(len(chosen), 1)))
            others = np.sort(rng.choice(others, min(wanted, len(others)), replace=False))
        for i in np.concatenate([chosen, others]).astype(int):
            columns["query"].append(item.example.query)
            columns["passage"].append(item.segments[i].text)
            columns["label"].append(float(item.labels[i]))
    return _cap(columns, config.max_pairs, rng)


def _negative_order(
    item: Labelled, candidates: np.ndarray, how: str, rng: np.random.Generator, bm25: BM25Scorer
) -> np.ndarray:
    """Candidates from hardest to easiest by the chosen criterion."""
    if how == "label":
        return candidates[np.argsort(-item.labels[candidates], kind="stable")]
    if how == "random":
        return rng.permutation(candidates)
    scores = bm25.score(item.example.query, item.segments)  # the index of a document is built once
    return candidates[np.argsort(-scores[candidates], kind="stable")]


def dpr_triples(items: Sequence[Labelled], config: PairConfig) -> dict[str, list]:
    """Columns `query`, `positive`, `negative`: one row per positive, each with its own hard negative
    (the query's k-th positive gets its k-th hardest negative). Queries without positives are skipped."""
    rng = np.random.default_rng(config.seed)
    ceiling = config.negative_ceiling if config.negative_ceiling is not None else config.positive_threshold / 2
    columns: dict[str, list] = {"query": [], "positive": [], "negative": []}
    bm25 = BM25Scorer(cache_size=4)
    for item in items:
        chosen = positives(item.labels, config)
        if not len(chosen):
            continue
        candidates = np.flatnonzero(item.labels < ceiling)
        if not len(candidates):  # every segment is close to relevant: take the weakest non-positives
            candidates = np.setdiff1d(np.arange(len(item.segments)), chosen)
        if not len(candidates):
            continue
        negatives = _negative_order(item, candidates, config.hard_negatives, rng, bm25)
        for k, i in enumerate(chosen):
            columns["query"].append(item.example.query)
            columns["positive"].append(item.segments[int(i)].text)
            columns["negative"].append(item.segments[int(negatives[k % len(negatives)])].text)
    return _cap(columns, config.max_pairs, rng)

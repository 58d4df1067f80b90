"""ROUGE as the QMSum papers report it, via Google's `rouge-score`.

F1 x 100 with Porter stemming. `rougeLsum` is summary-level ROUGE-L: prediction and reference are
split into one sentence per line first (this is the "R-L" of the QMSum papers); `rougeL` is
plain sentence-level LCS over the whole text, a different and usually lower number. With several
references, each metric is the maximum over them.

The split ignores case: lowercased, tokenized outputs ("the team agreed . they ...") are split at
the same places as their cased originals. A splitter that needs a capital after the full stop
leaves such a summary one "sentence", and its rougeLsum silently falls to about its rougeL.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from rouge_score import rouge_scorer

from ..text import split_sentences

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")


@functools.cache
def _scorer(keys: tuple[str, ...]) -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(list(keys), use_stemmer=True)


def _lines(text: str) -> str:
    return "\n".join(split_sentences(text.replace("\n", " "), any_case=True))


def rouge(prediction: str, references: Sequence[str], keys: Sequence[str] = ROUGE_KEYS) -> dict[str, float]:
    """F1 x 100 of `prediction` against the best of `references`, per ROUGE variant."""
    if not references:
        raise ValueError("ROUGE needs at least one reference")
    keys = tuple(keys)
    best = dict.fromkeys(keys, 0.0)
    prediction_lines = _lines(prediction)
    for reference in references:
        scores = _scorer(keys).score(_lines(reference), prediction_lines)
        for key in keys:
            best[key] = max(best[key], scores[key].fmeasure * 100)
    return best


def mean_scores(rows: Iterable[dict[str, float]]) -> dict[str, float]:
    """The mean of each key over rows (all rows must have the same keys)."""
    rows = list(rows)
    if not rows:
        return {}
    return {key: sum(r[key] for r in rows) / len(rows) for key in rows[0]}

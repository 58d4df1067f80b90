"""Extractor evaluation: how good is a ranking of segments as input to a writer?

For each example: ROUGE-1/2/L between the reference and the top-1, top-5 and top-15 segments,
and all segments in rank order truncated to a token budget (1024); the mean word count of each
selection; and, for the truncated selection against the gold spans, unit-level precision/recall
(`span_precision`, `span_recall`: shares of speaker turns) and span-level recall (`gold_span_recall`:
share of gold spans touched). `rougeL` is plain LCS, `rougeLsum` the summary-level R-L of the papers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..budget import TokenCounter, select_under_budget
from ..document import Example
from ..document import Evidence
from ..text import count_words
from .rouge import rouge
from .spans import covered_units, gold_span_recall, gold_units, span_precision_recall

TOP_K = (1, 5, 15)
EXTRACTOR_ROUGE = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def selections(ranked: Sequence[Evidence], budget: int, counter: TokenCounter) -> dict[str, list[Evidence]]:
    """The selections that are scored: top1, top5, top15 and topall (truncated to the budget)."""
    usable = [e for e in ranked if e.score != float("-inf")]
    chosen = {f"top{k}": sorted(usable[:k], key=lambda e: e.segment.start) for k in TOP_K}
    chosen["topall"] = select_under_budget(usable, budget, counter, cut_last=True)
    return chosen


def example_metrics(example: Example, ranked: Sequence[Evidence], budget: int, counter: TokenCounter) -> dict:
    """All extractor metrics of one example (span metrics only when it has gold spans)."""
    row: dict[str, float] = {}
    for name, chosen in selections(ranked, budget, counter).items():
        text = "\n".join(e.segment.text for e in chosen)
        for key, value in rouge(text, example.references, EXTRACTOR_ROUGE).items():
            row[f"{name}_{key}"] = value
        row[f"{name}_words"] = count_words(text)
        if name == "topall":
            pr = span_precision_recall(example, [e.segment for e in chosen])
            if pr is not None:
                row["span_precision"], row["span_recall"] = pr[0] * 100, pr[1] * 100
                row["gold_span_recall"] = gold_span_recall(example, [e.segment for e in chosen]) * 100
    return row


def gold_ranking(example: Example, ranked: Sequence[Evidence]) -> list[Evidence]:
    """The oracle: segments inside the gold spans (document order) and nothing else."""
    gold = gold_units(example)
    inside = [e for e in ranked if covered_units(example.document, [e.segment]) & gold]
    return [Evidence(e.segment, 1.0) for e in sorted(inside, key=lambda e: e.segment.start)]


def aggregate(rows: Sequence[dict]) -> dict[str, float]:
    """Means over examples; span metrics over the examples that have gold spans."""
    keys = sorted({k for row in rows for k in row})
    metrics = {k: float(np.mean([row[k] for row in rows if k in row])) for k in keys}
    metrics["n"] = len(rows)
    metrics["n_with_spans"] = sum("span_recall" in row for row in rows)
    return metrics



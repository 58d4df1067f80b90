"""Faithfulness metrics beside ROUGE: are the answer's numbers, names and sentences in its evidence?

Per example (None where the answer states no number, no name, or no sentence):
- `number_precision`: share of the answer's numbers that occur in the evidence the writer was given
  (`number_precision_document`: in the whole document);
- `name_precision`, `name_precision_document`: the same for capitalised names and terms;
- `supported_sentences`: share of the answer's sentences that some evidence segment supports
  (a support scorer's score at least `SUPPORT_THRESHOLD`; `grounding.LexicalSupport` by default,
  any scorer of `qfsum.support.build_support_scorer` on request).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..grounding import SUPPORT_THRESHOLD, cite, names, numbers, precision

if TYPE_CHECKING:
    from ..support import SupportScorer

FAITHFULNESS_KEYS = ("number_precision", "number_precision_document", "name_precision", "name_precision_document",
                     "supported_sentences")


def faithfulness(answer: str, evidence: Sequence[str], document: str,
                 scorer: SupportScorer | None = None) -> dict[str, float | None]:
    """The faithfulness metrics of one answer, in [0, 1] (None where undefined); `scorer` judges
    sentence support (None: the lexical scorer)."""
    claimed_numbers, claimed_names = numbers(answer), names(answer)
    joined = "\n".join(evidence)
    sentences = cite(answer, evidence, scorer, SUPPORT_THRESHOLD)  # type: ignore[arg-type]  # any SupportScorer
    return {
        "number_precision": precision(claimed_numbers, joined, numbers),
        "number_precision_document": precision(claimed_numbers, document, numbers),
        "name_precision": precision(claimed_names, joined, _words),
        "name_precision_document": precision(claimed_names, document, _words),
        "supported_sentences": (sum(s.support >= SUPPORT_THRESHOLD for s in sentences) / len(sentences)
                                if sentences else None),
    }


def _words(text: str) -> list[str]:
    """Every lowercased word of `text` (a name counts as present when the source has it, in any case)."""
    return [w.strip(".,;:!?()[]\"'") for w in text.lower().split()]


def mean_defined(rows: Iterable[dict], keys: Sequence[str] = FAITHFULNESS_KEYS) -> dict[str, float]:
    """Mean of each key over the rows where it is defined, and `n_<key>`, how many those were."""
    rows = list(rows)
    out: dict[str, float] = {}
    for key in keys:
        values = [row[key] for row in rows if row.get(key) is not None]
        out[key] = sum(values) / len(values) if values else float("nan")
        out[f"n_{key}"] = len(values)
    return out

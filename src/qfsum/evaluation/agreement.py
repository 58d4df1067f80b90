"""How well does a support scorer agree with a reader's labels of answer sentences?

Each label says whether a reader found one answer sentence supported by the answer's evidence.
The scorer agrees when its best segment's score is at least the threshold exactly for the sentences
the reader found supported. What matters most is "not supported", the class a reader must be
warned about: its precision (of the sentences the scorer flags, how many the reader also found
unsupported) and recall (of those the reader found unsupported, how many it flags).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..grounding import SUPPORT_THRESHOLD


@dataclass(frozen=True)
class Agreement:
    """The confusion table of reader vs scorer, counted in sentences."""

    both_supported: int  # reader: supported, scorer: supported
    missed_support: int  # reader: supported, scorer: not supported (a false alarm)
    missed_error: int  # reader: not supported, scorer: supported (an error let through)
    both_unsupported: int  # reader: not supported, scorer: not supported

    @property
    def precision_not_supported(self) -> float:
        """Of the sentences the scorer flags, the share the reader also found unsupported."""
        flagged = self.both_unsupported + self.missed_support
        return self.both_unsupported / flagged if flagged else float("nan")

    @property
    def recall_not_supported(self) -> float:
        """Of the sentences the reader found unsupported, the share the scorer flags."""
        unsupported = self.both_unsupported + self.missed_error
        return self.both_unsupported / unsupported if unsupported else float("nan")


def agreement(labels: Sequence[Mapping[str, Any]], evidence: Mapping[str, Sequence[str]], scorer: Any,
              threshold: float = SUPPORT_THRESHOLD) -> Agreement:
    """Count agreement over `labels` (`id`, `sentence`, `supported`), the evidence of each labelled
    example given by id in `evidence`, judged by `scorer` (a `qfsum.support.SupportScorer`)."""
    counts = {(h, p): 0 for h in (True, False) for p in (True, False)}  # (reader says supported, scorer says)
    for label in labels:
        segments = list(evidence.get(label["id"], []))
        predicted = max(scorer.scores(label["sentence"], segments), default=0.0) >= threshold
        counts[(bool(label["supported"]), predicted)] += 1
    return Agreement(counts[(True, True)], counts[(True, False)], counts[(False, True)], counts[(False, False)])

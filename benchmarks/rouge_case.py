"""Does rougeLsum hold when a system lowercases and tokenizes its output? Before/after the splitter fix.

    qfsum evaluate --data ../shared/data/qmsum --split val --pipeline extractive --out runs/evaluate-extractive-val
    python benchmarks/rouge_case.py runs/evaluate-extractive-val

Re-scores each prediction of an `evaluate` folder four ways: as written, with either splitter; lowercased and tokenized
(punctuation split off, as QMSum's published HMNet outputs are) with the splitter that needs a capital
after a full stop (the old rougeLsum); and the same text with the case-blind splitter rougeLsum now
uses. A splitter that finds no sentence makes rougeLsum fall to about rougeL.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from rouge_score import rouge_scorer

from qfsum.text import split_sentences

_PUNCTUATION = re.compile(r"([.,!?;:])")
_SCORER = rouge_scorer.RougeScorer(["rougeL", "rougeLsum"], use_stemmer=True)


def tokenized_lowercase(text: str) -> str:
    """'We agreed. Then...' -> 'we agreed . then . . .'"""
    return " ".join(_PUNCTUATION.sub(r" \1 ", text.lower()).split())


def rouge_l(prediction: str, reference: str, any_case: bool) -> tuple[float, float]:
    """(rougeL, rougeLsum) F1 x 100, sentences split with or without the capital rule."""
    def lines(text: str) -> str:
        return "\n".join(split_sentences(text.replace("\n", " "), any_case=any_case))
    scores = _SCORER.score(lines(reference), lines(prediction))
    return scores["rougeL"].fmeasure * 100, scores["rougeLsum"].fmeasure * 100


def main() -> None:
    rows = [json.loads(line) for line in (Path(sys.argv[1]) / "predictions.jsonl").read_text().splitlines()]
    ways = {
        "as written, old split (capital needed)": lambda p, r: rouge_l(p, r, False),
        "as written, case-blind split (now)": lambda p, r: rouge_l(p, r, True),
        "lowercased + tokenized, old split (capital needed)": lambda p, r: rouge_l(tokenized_lowercase(p), tokenized_lowercase(r), False),
        "lowercased + tokenized, case-blind split (now)": lambda p, r: rouge_l(tokenized_lowercase(p), tokenized_lowercase(r), True),
    }
    print(f"{len(rows)} predictions of {sys.argv[1]}; best reference each\n")
    print("| text scored | rougeL | rougeLsum |\n| --- | ---: | ---: |")
    for name, score in ways.items():
        best = [max((score(row["prediction"], ref) for ref in row["references"]), key=lambda s: s[1]) for row in rows]
        print(f"| {name} | {sum(b[0] for b in best) / len(best):.2f} | {sum(b[1] for b in best) / len(best):.2f} |")


if __name__ == "__main__":
    main()

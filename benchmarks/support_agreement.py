"""How well does the support scorer agree with hand labels of answer sentences?

    qfsum evaluate --data ../shared/data/qmsum --split val --limit 60 --pipeline default --out runs/v60-default
    python benchmarks/support_agreement.py benchmarks/labels/support_default_val60.jsonl runs/v60-default

Each label names an example of the run, one sentence of its answer, whether a reader found it
supported by the answer's evidence, and why. The evidence is rebuilt from the run's own pipeline
config (its segmenter) and the segment indices in `predictions.jsonl`. Prints the confusion table
and the precision and recall of "not supported", the class a reader must be warned about.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from qfsum.grounding import SUPPORT_THRESHOLD, LexicalSupport
from qfsum.readers import read_examples
from qfsum.segment import Segmenter, SegmenterConfig


def main() -> None:
    labels_path, run = Path(sys.argv[1]), Path(sys.argv[2])
    data = sys.argv[3] if len(sys.argv) > 3 else "../shared/data/qmsum"
    labels = [json.loads(line) for line in labels_path.read_text().splitlines()]
    rows = {r["id"]: r for r in map(json.loads, (run / "predictions.jsonl").read_text().splitlines())}
    config = json.loads((run / "run.json").read_text())["pipeline"]
    segmenter = Segmenter(SegmenterConfig(**config["segmenter"]))
    examples = {e.id: e for e in read_examples(data, "val")}
    scorer = LexicalSupport()
    counts = {(h, p): 0 for h in (True, False) for p in (True, False)}  # (reader says supported, scorer says)
    for label in labels:
        segments = segmenter(examples[label["id"]].document)
        evidence = [segments[i].text for i in rows[label["id"]]["evidence"]]
        predicted = max(scorer.scores(label["sentence"], evidence), default=0.0) >= SUPPORT_THRESHOLD
        counts[(label["supported"], predicted)] += 1
    caught, missed = counts[(False, False)], counts[(False, True)]
    false_alarms = counts[(True, False)]
    print(f"{len(labels)} labelled sentences of {len({l['id'] for l in labels})} answers; "
          f"{sum(l['supported'] for l in labels)} supported by the reader's judgement")
    print("| reader \\ scorer | supported | not supported |\n| --- | ---: | ---: |")
    for human in (True, False):
        print(f"| {'supported' if human else 'not supported'} | {counts[(human, True)]} | {counts[(human, False)]} |")
    print(f"'not supported': precision {caught / max(caught + false_alarms, 1):.3f}, "
          f"recall {caught / max(caught + missed, 1):.3f} (threshold {SUPPORT_THRESHOLD})")


if __name__ == "__main__":
    main()

"""How well does a support scorer agree with hand labels of answer sentences?

    qfsum evaluate --data ../shared/data/qmsum --split val --limit 60 --pipeline default --out runs/v60-default
    python benchmarks/support_agreement.py benchmarks/labels/support_default_val60.jsonl runs/v60-default
    python benchmarks/support_agreement.py benchmarks/labels/support_default_val60.jsonl runs/v60-default \
        --support-scorer path/to/an-nli-model

Each label names an example of the run, one sentence of its answer, whether a reader found it
supported by the answer's evidence, and why. The evidence is rebuilt from the run's recorded
evidence spans or, for older runs, its pipeline config (its segmenter) and the segment indices in
`predictions.jsonl`. Prints the confusion table and the precision and recall of "not supported",
the class a reader must be warned about, for the scorer given (lexical by default).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qfsum.errors import QfsumError
from qfsum.evaluation.agreement import agreement
from qfsum.evaluation.runs import evidence_texts, load_run
from qfsum.grounding import SUPPORT_THRESHOLD
from qfsum.readers import read_examples
from qfsum.support import build_support_scorer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", type=Path, help="hand labels (.jsonl: id, sentence, supported, reason)")
    parser.add_argument("run", type=Path, help="the evaluate run folder the labelled answers come from")
    parser.add_argument("data", nargs="?", default="../shared/data/qmsum", help="the run's QMSum folder")
    parser.add_argument("--split", default="val")
    parser.add_argument("--support-scorer", default="lexical",
                        help="lexical, or an NLI / fact-checking model (hub id or local directory)")
    args = parser.parse_args()
    try:
        scorer = build_support_scorer(args.support_scorer)
        labels = [json.loads(line) for line in args.labels.read_text().splitlines() if line.strip()]
        run = load_run(args.run)
        rows = {r["id"]: r for r in run.rows}
        examples = {e.id: e for e in read_examples(args.data, args.split)}
        missing = sorted({l["id"] for l in labels} - rows.keys())
        if missing:
            raise QfsumError(f"{args.run}: no prediction for labelled example(s) {', '.join(missing[:5])}")
        evidence = {i: evidence_texts(rows[i], examples.get(i), run.config.get("pipeline"))
                    for i in {l["id"] for l in labels}}
    except QfsumError as err:
        sys.exit(f"error: {err}")
    table = agreement(labels, evidence, scorer)
    print(f"{len(labels)} labelled sentences of {len({l['id'] for l in labels})} answers; "
          f"{sum(l['supported'] for l in labels)} supported by the reader's judgement; scorer: {scorer.name}")
    print("| reader \\ scorer | supported | not supported |\n| --- | ---: | ---: |")
    print(f"| supported | {table.both_supported} | {table.missed_support} |")
    print(f"| not supported | {table.missed_error} | {table.both_unsupported} |")
    print(f"'not supported': precision {table.precision_not_supported:.3f}, "
          f"recall {table.recall_not_supported:.3f} (threshold {SUPPORT_THRESHOLD})")


if __name__ == "__main__":
    main()

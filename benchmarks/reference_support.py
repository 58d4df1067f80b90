"""How faithful do the faithfulness metrics find the human references? The ceiling a writer that
writes like the references can reach.

    python benchmarks/reference_support.py runs/val-default-grounded
    python benchmarks/reference_support.py runs/val-default-grounded --support-scorer path/to/nli-model

For every example of an evaluate run, scores the first reference summary as if it were the answer:
against the evidence the run's writer was given, and against every segment of the document (the
best any evidence selection could do). Prints the mean of each faithfulness metric both ways.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qfsum.errors import QfsumError
from qfsum.evaluation.faithfulness import faithfulness, mean_defined
from qfsum.evaluation.runs import evidence_texts, load_run
from qfsum.pipeline import PipelineConfig
from qfsum.readers import read_examples
from qfsum.segment import Segmenter
from qfsum.support import build_support_scorer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="an evaluate run folder (its evidence is used)")
    parser.add_argument("data", nargs="?", default="../shared/data/qmsum", help="the run's QMSum folder")
    parser.add_argument("--split", default="val")
    parser.add_argument("--support-scorer", default="lexical", help="lexical, or an NLI model (hub id or directory)")
    args = parser.parse_args()
    try:
        run = load_run(args.run)
        scorer = build_support_scorer(args.support_scorer)
        examples = {e.id: e for e in read_examples(args.data, args.split)}
    except QfsumError as err:
        sys.exit(f"error: {err}")
    pipeline = run.config.get("pipeline")
    segmenter = Segmenter(PipelineConfig.from_dict(pipeline).segmenter)
    evidence_rows, document_rows = [], []
    for row in run.rows:
        example = examples[row["id"]]
        reference = example.references[0]
        document = example.document.text
        evidence_rows.append(faithfulness(reference, evidence_texts(row, example, pipeline), document, scorer))
        segments = [s.text for s in segmenter(example.document)]
        document_rows.append(faithfulness(reference, segments, document, scorer))
    print(f"{len(run.rows)} references of {args.run} ({args.split}); support scorer: {args.support_scorer}")
    print("| reference scored against | numbers | names | supported sentences |")
    print("| --- | ---: | ---: | ---: |")
    for label, rows in (("the run's evidence", evidence_rows), ("every segment of the document", document_rows)):
        m = mean_defined(rows)
        print(f"| {label} | {m['number_precision']:.3f} | {m['name_precision']:.3f} | {m['supported_sentences']:.3f} |")


if __name__ == "__main__":
    main()

"""Replay an evaluate run under another grounding mode, without writing the answers again.

    python benchmarks/regrounded.py runs/val-default --grounding strict --out runs/val-default-strict
    qfsum compare runs/val-default runs/val-default-strict

Grounding comes after the writer: the writer's draft does not depend on the mode, so applying
`pipeline.ground` to a `flag` run's answers and their recorded evidence (`evidence_spans`) gives
exactly what the same pipeline answers in the other mode. The run must have been made in `flag`
mode (its predictions are the drafts). A recorded `relevance` (runs of pipelines with
`off_topic_below`) replays the off-topic rule too. Writes a run folder `qfsum compare` and
`qfsum report` read. `--grounding flag` rescores a run with today's faithfulness metrics;
`--complete-sentences` replays the writers' cut to a whole sentence on a run made before it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qfsum.document import Draft, Evidence, Segment
from qfsum.errors import QfsumError
from qfsum.evaluation.faithfulness import faithfulness, mean_defined
from qfsum.evaluation.rouge import ROUGE_KEYS, mean_scores, rouge
from qfsum.evaluation.runs import load_run
from qfsum.io import atomic_write_lines, atomic_write_text
from qfsum.pipeline import GROUNDING_MODES, PipelineConfig, ground, names_a_topic, off_topic_note
from qfsum.readers import read_examples
from qfsum.support import build_support_scorer
from qfsum.text import complete_sentences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="an evaluate run folder made in flag mode")
    parser.add_argument("--grounding", choices=GROUNDING_MODES, default="strict")
    parser.add_argument("--out", type=Path, required=True, help="the new run folder")
    parser.add_argument("--data", default="../shared/data/qmsum", help="the run's QMSum folder")
    parser.add_argument("--split", default="val")
    parser.add_argument("--complete-sentences", action="store_true",
                        help="first cut each answer back to its last whole sentence, as model writers now do")
    args = parser.parse_args()
    try:
        run = load_run(args.run)
        config = PipelineConfig.from_dict(run.config["pipeline"])
        if config.grounding != "flag":
            raise QfsumError(f"{args.run}: made in {config.grounding} mode; replay needs a flag run")
        missing = sum("evidence_spans" not in row for row in run.rows)
        if missing:  # indices alone lose the neighbours the writer's budget merged into a segment
            raise QfsumError(f"{args.run}: {missing} rows lack evidence_spans (a run from before they were "
                             "recorded); their evidence cannot be rebuilt exactly")
        examples = {e.id: e for e in read_examples(args.data, args.split)}
        scorer = build_support_scorer(config.support)
    except QfsumError as err:
        sys.exit(f"error: {err}")
    rows = []
    for row in run.rows:
        example = examples[row["id"]]
        document = example.document.text
        segments = [Segment(i, document[a:b], a, b) for i, (a, b) in zip(row["evidence"], row["evidence_spans"], strict=True)]
        evidence = [Evidence(segment, 1.0) for segment in segments]
        relevance = row.get("relevance") if names_a_topic(row["query"]) else None  # as the pipeline decides
        off_topic = off_topic_note(relevance, config.off_topic_below)
        draft = complete_sentences(row["prediction"]) if args.complete_sentences else row["prediction"]
        text, _, note = ground(Draft(draft, evidence), args.grounding, scorer, off_topic, row["query"])
        rows.append({**row, "prediction": text, "note": note, **rouge(text, example.references),
                     **faithfulness(text, [e.segment.text for e in evidence], document, scorer)})
    config.grounding = args.grounding
    metrics = {**mean_scores([{k: r[k] for k in ROUGE_KEYS} for r in rows]), **mean_defined(rows), "n": len(rows),
               "seconds": sum(r["seconds"] for r in rows), "replayed_from": str(args.run),
               "changed": sum(r["prediction"] != old["prediction"] for r, old in zip(rows, run.rows, strict=True))}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_lines(args.out / "predictions.jsonl", [json.dumps(r) for r in rows])
    atomic_write_text(args.out / "run.json", json.dumps({**run.config, "pipeline": config.to_dict()}, indent=2) + "\n")
    atomic_write_text(args.out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}, indent=1))


if __name__ == "__main__":
    main()

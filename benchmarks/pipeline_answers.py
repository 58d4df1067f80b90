"""Every packaged pipeline's answers to the first N QMSum val queries, as JSON: a before/after check.

    python benchmarks/pipeline_answers.py ../shared/data/qmsum 5 > before.json
    ... change the code ...
    python benchmarks/pipeline_answers.py ../shared/data/qmsum 5 > after.json && cmp before.json after.json

Timings are left out (they differ run to run); answers and evidence must not.
"""

from __future__ import annotations

import json
import sys

from qfsum import Pipeline
from qfsum.pipeline import packaged_pipelines
from qfsum.readers import read_examples


def main() -> None:
    data, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5
    examples = read_examples(data, "val")[:count]
    answers = {}
    for name in packaged_pipelines():
        pipeline = Pipeline.load(name)
        answers[name] = [
            {"id": e.id, "summary": s.text, "evidence": [[ev.segment.start, ev.segment.end, round(ev.score, 5)] for ev in s.evidence]}
            for e, s in zip(examples, (pipeline.summarize(e.document, e.query) for e in examples), strict=True)
        ]
        print(f"{name}: {len(examples)} answers", file=sys.stderr)
    json.dump(answers, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()

"""Does an answer depend on the batch it is decoded in? A pipeline's answers one query at a time
against its writer's batches.

    python benchmarks/batch_invariance.py --pipeline default --dtype auto --limit 12
    python benchmarks/batch_invariance.py --pipeline default --dtype float32 --limit 6

The first `--limit` queries of a QMSum split are answered twice by the same pipeline (its writer's
`dtype` set to `--dtype`): with a writer batch of 1, and of `--batch-size` (what `qfsum evaluate` and
a busy server do). Prints how many answers differ and the first few pairs. Greedy decoding in bf16
turns rounding differences into other words; float32 should give the same answers.
"""

from __future__ import annotations

import argparse
import json
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="default")
    parser.add_argument("--dtype", default="auto", help="the writer's dtype: auto (bf16 where native), float32, ...")
    parser.add_argument("--data", default="../shared/data/qmsum")
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--show", type=int, default=3, help="differing pairs to print")
    args = parser.parse_args()

    from qfsum.threads import set_threads

    set_threads(args.threads)
    from qfsum.errors import QfsumError
    from qfsum.pipeline import Pipeline, load_config
    from qfsum.readers import read_examples

    try:
        examples = read_examples(args.data, args.split)[: args.limit]
        answers = {}
        for size in (1, args.batch_size):
            config = load_config(args.pipeline)
            config.writer.batch_size, config.writer.dtype = size, args.dtype
            pipeline = Pipeline(config)
            answers[size] = [s.text for s in pipeline.summarize_batch([(e.document, e.query) for e in examples])]
    except QfsumError as err:
        sys.exit(f"error: {err}")
    differ = [i for i, (a, b) in enumerate(zip(answers[1], answers[args.batch_size])) if a != b]
    print(f"{args.pipeline}, dtype {args.dtype}, {args.threads} thread(s): {len(differ)} of {len(examples)} answers "
          f"differ between writer batches of 1 and {args.batch_size}")
    for i in differ[: args.show]:
        print(json.dumps({"id": examples[i].id, "alone": answers[1][i], "batched": answers[args.batch_size][i]}))


if __name__ == "__main__":
    main()

"""Is B better than A on the same examples? A paired bootstrap over two runs' per-example figures.

    python benchmarks/paired_bootstrap.py runs/extractor-hybrid-w256-val runs/extractor-dpr-w256-val \
        --metrics top1_rouge1,span_recall
    python benchmarks/paired_bootstrap.py runs/evaluate-hybrid-w256-val runs/evaluate-default-dpr-val \
        --metrics rouge1,rouge2,rougeLsum

A thin wrapper kept for the commands in the docs: the bootstrap lives in
`qfsum.evaluation.bootstrap`, and `qfsum compare RUN_A RUN_B` is the command to use (it picks the
metrics both runs have). For each metric: the mean of A and of B over the examples both have,
B - A, a 95 % interval of B - A from resampling the examples (10,000 draws), and the share of
draws where B does not beat A (a one-sided p-value). Examples where a metric is missing (no gold
span) are left out of it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qfsum.errors import QfsumError
from qfsum.evaluation.bootstrap import check_same_examples, format_differences, paired_differences, read_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="run folder (or per_example.jsonl) of the baseline")
    parser.add_argument("b", type=Path, help="run folder (or per_example.jsonl) of the challenger")
    parser.add_argument("--metrics", default="top1_rouge1,span_recall")
    parser.add_argument("--draws", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        a, b = read_rows(args.a), read_rows(args.b)
        check_same_examples(a, b, (str(args.a), str(args.b)))
    except QfsumError as err:
        sys.exit(f"error: {err}")
    differences = paired_differences(a, b, args.metrics.split(","), draws=args.draws, seed=args.seed)
    print("\n".join(format_differences(differences)))


if __name__ == "__main__":
    main()

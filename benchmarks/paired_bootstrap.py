"""Is B better than A on the same examples? A paired bootstrap over two runs' per-example figures.

    python benchmarks/paired_bootstrap.py runs/extractor-hybrid-w256-val runs/extractor-dpr-w256-val \
        --metrics top1_rouge1,span_recall
    python benchmarks/paired_bootstrap.py runs/evaluate-hybrid-w256-val runs/evaluate-default-dpr-val \
        --metrics rouge1,rouge2,rougeLsum

For each metric: the mean of A and of B over the examples both have, B - A, a 95 % interval of
B - A from resampling the examples (10,000 draws), and the share of draws where B does not beat A
(a one-sided p-value). Examples where a metric is missing (no gold span) are left out of it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def read(folder: Path) -> dict[str, dict]:
    """Rows by example id: an `evaluate-extractor` folder (per_example.jsonl), an `evaluate` folder
    (predictions.jsonl, with per-example ROUGE) or either file."""
    path = folder
    if folder.is_dir():
        path = folder / "per_example.jsonl" if (folder / "per_example.jsonl").exists() else folder / "predictions.jsonl"
    return {row["id"]: row for row in map(json.loads, path.read_text().splitlines())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="run folder (or per_example.jsonl) of the baseline")
    parser.add_argument("b", type=Path, help="run folder (or per_example.jsonl) of the challenger")
    parser.add_argument("--metrics", default="top1_rouge1,span_recall")
    parser.add_argument("--draws", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    a, b = read(args.a), read(args.b)
    rng = np.random.default_rng(args.seed)
    print(f"{'metric':<16}{'n':>5}{'A':>8}{'B':>8}{'B-A':>8}   95% interval   p(B<=A)")
    for metric in args.metrics.split(","):
        ids = [i for i in a if i in b and a[i].get(metric) is not None and b[i].get(metric) is not None]
        diff = np.array([b[i][metric] - a[i][metric] for i in ids], dtype=np.float64)
        draws = diff[rng.integers(0, len(diff), size=(args.draws, len(diff)))].mean(axis=1)
        low, high = np.percentile(draws, [2.5, 97.5])
        mean_a = np.mean([a[i][metric] for i in ids])
        print(f"{metric:<16}{len(ids):>5}{mean_a:>8.2f}{mean_a + diff.mean():>8.2f}{diff.mean():>+8.2f}"
              f"   [{low:+.2f}, {high:+.2f}]   {np.mean(draws <= 0):.4f}")


if __name__ == "__main__":
    main()

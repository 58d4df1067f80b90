"""Markdown tables of the QMSum runs that benchmarks/qmsum_results.sh leaves under runs/.

Usage: python benchmarks/results_table.py [RUNS_DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PIPELINES = ("extractive-lead", "extractive-bm25", "extractive-dense", "extractive", "default")
SCORERS = ("lead", "bm25", "dense", "hybrid", "gold")


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def main() -> None:
    runs = Path(sys.argv[1] if len(sys.argv) > 1 else "runs")
    print("| pipeline | split | R-1 | R-2 | R-L (rougeLsum) | rougeL | n | seconds |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for split in ("val", "test"):
        for name in PIPELINES:
            m = load(runs / f"evaluate-{name}-{split}" / "metrics.json")
            if m:
                print(f"| {name} | {split} | {m['rouge1']:.2f} | {m['rouge2']:.2f} | {m['rougeLsum']:.2f} "
                      f"| {m['rougeL']:.2f} | {m['n']} | {m['seconds']:.0f} |")
    print()
    cols = [f"{k}_{r}" for k in ("top1", "top5", "top15", "topall") for r in ("rouge1", "rouge2", "rougeL")]
    print("| scorer | " + " | ".join(c.replace("_rouge", " R-") for c in cols)
          + " | top1 words | top5 words | top15 words | topall words | span P | span R | n |")
    print("| --- |" + " ---: |" * (len(cols) + 7))
    for scorer in SCORERS:
        m = load(runs / f"extractor-{scorer}-val" / "metrics.json")
        if m:
            words = [f"{m[f'{k}_words']:.0f}" for k in ("top1", "top5", "top15", "topall")]
            print(f"| {scorer} | " + " | ".join(f"{m[c]:.2f}" for c in cols) + " | " + " | ".join(words)
                  + f" | {m.get('span_precision', float('nan')):.2f} | {m.get('span_recall', float('nan')):.2f} | {m['n']} |")


if __name__ == "__main__":
    main()

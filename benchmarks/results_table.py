"""Markdown tables of the QMSum runs that benchmarks/qmsum_results.sh leaves under runs/.

Usage: python benchmarks/results_table.py [RUNS_DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PIPELINES = (  # (folder under runs/ without the -SPLIT suffix, pipeline as shown)
    ("evaluate-extractive-lead", "extractive-lead"),
    ("evaluate-extractive-bm25", "extractive-bm25"),
    ("evaluate-extractive-dense", "extractive-dense"),
    ("evaluate-extractive", "extractive"),
    ("evaluate-default-turns", "hybrid, turns (default-turns)"),
    ("evaluate-default-qmsum", "hybrid, turns (default until 2026-11-24 noon, = default-turns)"),
    ("evaluate-hybrid-w256", "hybrid, 256-token windows (hybrid-w256)"),
    ("evaluate-default-dpr", "BM25 + minilm-dpr-qmsum, 256-token windows (default)"),
)
EXTRACTORS = (  # (folder under runs/, scorer as shown, segments)
    ("extractor-lead-val", "lead", "turn"),
    ("extractor-bm25-val", "bm25", "turn"),
    ("extractor-dense-val", "dense", "turn"),
    ("extractor-hybrid-val", "hybrid", "turn"),
    ("extractor-relregtt-1k-val", "RelRegTT, 1000 steps", "turn"),
    ("extractor-dpr-turn-val", "DPR, 150 steps", "turn"),
    ("extractor-relreg-turn-val", "RelReg, 200 steps", "turn"),
    ("extractor-gold-val", "gold", "turn"),
    ("extractor-lead-w256-val", "lead", "256 tokens"),
    ("extractor-bm25-w256-val", "bm25", "256 tokens"),
    ("extractor-dense-w256-val", "dense", "256 tokens"),
    ("extractor-hybrid-w256-val", "hybrid", "256 tokens"),
    ("extractor-relregtt-1k-w256-val", "RelRegTT, 1000 steps (trained on turns)", "256 tokens"),
    ("extractor-relreg-w256-val", "RelReg, 400 steps (kept: step 200)", "256 tokens"),
    ("extractor-dpr-w256-val", "DPR, 400 steps (= minilm-dpr-qmsum)", "256 tokens"),
    ("extractor-minilm-dpr-qmsum-val", "minilm-dpr-qmsum (shipped fp16)", "256 tokens"),
    ("extractor-dpr-w256-s2-val", "DPR, +400 steps from it (stage 2)", "256 tokens"),
    ("extractor-hybrid-dpr-w256-val", "BM25 + DPR, RRF", "256 tokens"),
    ("extractor-default-val", "BM25 + minilm-dpr-qmsum, RRF (default)", "256 tokens"),
    ("extractor-relreg-w512-val", "RelReg, 400 steps", "512 tokens"),
)


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def main() -> None:
    runs = Path(sys.argv[1] if len(sys.argv) > 1 else "runs")
    print("| pipeline | split | R-1 | R-2 | R-L (rougeLsum) | rougeL | n | seconds |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for split in ("val", "test"):
        for folder, name in PIPELINES:
            m = load(runs / f"{folder}-{split}" / "metrics.json")
            if m:
                print(f"| {name} | {split} | {m['rouge1']:.2f} | {m['rouge2']:.2f} | {m['rougeLsum']:.2f} "
                      f"| {m['rougeL']:.2f} | {m['n']} | {m['seconds']:.0f} |")
    print()
    # rougeL: plain LCS; rougeLsum: summary-level, the papers' R-L. turn P/R: shares of speaker turns;
    # span R: share of gold spans touched (older runs lack the last two ROUGE columns and span R: nan)
    cols = [f"{k}_{r}" for k in ("top1", "top5", "top15", "topall") for r in ("rouge1", "rouge2", "rougeL", "rougeLsum")]
    print("| scorer | segments | " + " | ".join(c.replace("_", " ") for c in cols)
          + " | top1 words | top5 words | top15 words | topall words | turn P | turn R | span R | n |")
    print("| --- | --- |" + " ---: |" * (len(cols) + 8))
    for folder, scorer, segments in EXTRACTORS:
        m = load(runs / folder / "metrics.json")
        if m:
            words = [f"{m[f'{k}_words']:.0f}" for k in ("top1", "top5", "top15", "topall")]
            spans = [f"{m.get(k, float('nan')):.2f}" for k in ("span_precision", "span_recall", "gold_span_recall")]
            print(f"| {scorer} | {segments} | " + " | ".join(f"{m.get(c, float('nan')):.2f}" for c in cols) + " | "
                  + " | ".join(words + spans) + f" | {m['n']} |")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Every QMSum figure of docs/results.md: extractor tables (val) and pipeline ROUGE (val and test).
# Usage: bash benchmarks/qmsum_results.sh [QMSUM_DIR]   (outputs under runs/; resumable)
set -euo pipefail
DATA=${1:-../shared/data/qmsum}
Q=${QFSUM:-.venv/bin/qfsum}
for scorer in lead bm25 dense hybrid gold; do
  $Q evaluate-extractor --data "$DATA" --split val --scorer $scorer --out runs/extractor-$scorer-val --no-progress
done
for scorer in lead bm25 dense hybrid; do
  $Q evaluate-extractor --data "$DATA" --split val --scorer $scorer --segment 256:minilm --out runs/extractor-$scorer-w256-val --no-progress
done
for split in val test; do
  for p in extractive-lead extractive-bm25 extractive-dense extractive default; do
    $Q evaluate --data "$DATA" --split $split --pipeline $p --out runs/evaluate-$p-$split --no-progress
  done
done
# the default writer over 256-token windows (benchmarks/pipelines/default-w256): two-stage with the best heuristic
for split in val test; do
  $Q evaluate --data "$DATA" --split $split --pipeline benchmarks/pipelines/default-w256 --out runs/evaluate-default-w256-$split --no-progress
done

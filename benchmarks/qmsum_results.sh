#!/usr/bin/env bash
# Every QMSum figure of the current tables of docs/results.md: extractor tables (val) and pipeline
# ROUGE (val and test). Usage: bash benchmarks/qmsum_results.sh [QMSUM_DIR]  (outputs under runs/;
# resumable; `evaluate` refuses an output folder that holds another pipeline's results).
set -euo pipefail
DATA=${1:-../shared/data/qmsum}
Q=${QFSUM:-.venv/bin/qfsum}
for scorer in lead bm25 dense hybrid gold; do
  $Q evaluate-extractor --data "$DATA" --split val --scorer $scorer --out runs/extractor-$scorer-val --no-progress
done
for scorer in lead bm25 dense hybrid; do
  $Q evaluate-extractor --data "$DATA" --split val --scorer $scorer --segment 256:minilm --out runs/extractor-$scorer-w256-val --no-progress
done
# the shipped DPR extractor alone, and fused with BM25 as the default pipeline uses it
$Q evaluate-extractor --data "$DATA" --split val --scorer minilm-dpr-qmsum --segment 256:minilm --out runs/extractor-minilm-dpr-qmsum-val --no-progress
$Q evaluate-extractor --data "$DATA" --split val --scorer default --segment 256:minilm --out runs/extractor-default-val --no-progress
for split in val test; do
  for p in extractive-lead extractive-bm25 extractive-dense extractive; do
    $Q evaluate --data "$DATA" --split $split --pipeline $p --out runs/evaluate-$p-$split --no-progress
  done
  # two-stage, the same writer (smollm2-qmsum) behind three extractors: hybrid over turns, the best
  # heuristic (hybrid over 256-token windows) and the trained one (default: BM25 + minilm-dpr-qmsum)
  for p in benchmarks/pipelines/default-turns benchmarks/pipelines/hybrid-w256; do
    $Q evaluate --data "$DATA" --split $split --pipeline $p --out runs/evaluate-$(basename $p)-$split --no-progress
  done
  $Q evaluate --data "$DATA" --split $split --pipeline default --out runs/evaluate-default-dpr-$split --no-progress
done

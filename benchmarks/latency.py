"""Latency of `summarize` for one query on a ~10K-word meeting, and the dense encoder against fp32.

Usage: python benchmarks/latency.py [--data ../shared/data/qmsum] [--pipelines extractive default]

Prints a Markdown table. Rows per pipeline:
- cold start: a new `qfsum summarize --json` process (imports, model loads, first answer);
- first answer on a new document, models loaded (segmenting, encoding, scoring, writing);
- each further query on the same document (mean of the other queries).
The baseline row encodes the same document with the same encoder in plain fp32, as
sentence-transformers does by default, to give the speed-up of bf16 autocast as a ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date

from qfsum import Pipeline
from qfsum.pipeline import load_config
from qfsum.readers import read_examples
from qfsum.retrieval.dense import DenseScorer
from qfsum.segment import turn_segments


def pick_meeting(data: str, words: int = 10_000):
    """The val meeting closest to `words` words, with all of its queries."""
    examples = read_examples(data, "val")
    by_doc: dict[str, list] = {}
    for e in examples:
        by_doc.setdefault(e.document.id, []).append(e)
    doc_id = min(by_doc, key=lambda d: abs(len(by_doc[d][0].document.text.split()) - words))
    return by_doc[doc_id][0].document, [e.query for e in by_doc[doc_id]]


def timed(fn, repeat: int = 3) -> float:
    """Median seconds of `fn()` over `repeat` runs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cold_start(pipeline: str, text: str, query: str) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(text)
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "qfsum.cli", "summarize", f.name, "-q", query, "-p", pipeline, "--json"]
    subprocess.run(cmd, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    os.unlink(f.name)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/qmsum")
    parser.add_argument("--pipelines", nargs="+", default=["extractive", "default"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    document, queries = pick_meeting(args.data)
    words = len(document.text.split())
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores; date {date.today()}")
    print(f"document: QMSum val {document.id}, {words} words, {len(turn_segments(document))} turns, "
          f"{len(queries)} queries\n")
    print("| pipeline | measurement | seconds |")
    print("| --- | --- | ---: |")
    for name in args.pipelines:
        config = load_config(name)
        Pipeline(config).summarize(document, queries[0])  # load models and warm the kernels up

        def first_answer() -> None:
            Pipeline(config).summarize(document, queries[0])  # a new instance: nothing cached

        pipeline = Pipeline(config)
        pipeline.summarize(document, queries[0])
        further = statistics.mean(timed(lambda q=q: pipeline.summarize(document, q), 1) for q in queries[1:])
        print(f"| {name} | cold start (new process, load models, first answer) | {cold_start(name, document.text, queries[0]):.2f} |")
        print(f"| {name} | first answer on a new document, models loaded | {timed(first_answer, args.repeat):.3f} |")
        print(f"| {name} | each further query on the same document (mean) | {further:.3f} |")

    texts = [s.text for s in turn_segments(document)]
    ours, fp32 = DenseScorer(dtype="auto"), DenseScorer(dtype="float32")
    ours.encode(texts[:8]), fp32.encode(texts[:8])
    t_ours, t_fp32 = timed(lambda: ours.encode(texts), args.repeat), timed(lambda: fp32.encode(texts), args.repeat)
    agreement = float((ours.encode(texts) * fp32.encode(texts)).sum(axis=1).min())  # unit vectors: cosine
    print(f"\n| dense encoder, {len(texts)} turns | seconds | speed-up | min cosine with fp32 |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| fp32 (sentence-transformers default) | {t_fp32:.3f} | 1.00x | 1 |")
    print(f"| qfsum: dtype auto ({ours.dtype}), length-sorted batches of 32 | {t_ours:.3f} "
          f"| {t_fp32 / t_ours:.2f}x | {agreement:.5f} |")


if __name__ == "__main__":
    main()

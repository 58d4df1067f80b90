"""`qfsum bench batch`: the same batch job in one process and on (local) Ray, on QMSum requests."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from ..errors import QfsumError


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of `qfsum bench batch`."""
    p.add_argument("--data", required=True, help="QMSum folder (all splits unless --split), meeting file or .jsonl")
    p.add_argument("--split", default=None, help="only this split of a QMSum folder")
    p.add_argument("--requests", type=int, default=2000, help="requests to make, cycling the queries (default 2000)")
    p.add_argument("--pipeline", "-p", default="default", help="pipeline name, saved directory, or module:factory")
    p.add_argument("--out", default="runs/bench-batch", help="folder for the requests, outputs and results.json")
    from ..cli.batch import execution_arguments

    execution_arguments(p)


def qmsum_requests(data: str, split: str | None, count: int) -> list[dict]:
    """`count` JSONL requests from QMSum examples: each meeting as speaker segments, one query each."""
    from ..readers import read_examples

    path = Path(data)
    splits = sorted(p.name for p in path.iterdir() if p.is_dir()) if path.is_dir() else []
    chosen = [split] if split else (splits or [None])
    examples = [e for s in chosen for e in read_examples(path, s)]
    if not examples:
        raise QfsumError(f"{data}: no examples")
    requests = []
    for i, example in zip(range(count), itertools.cycle(examples)):
        segments = [{"speaker": u.speaker, "text": u.text.split(": ", 1)[-1] if u.speaker else u.text}
                    for u in example.document.units]
        requests.append({"id": f"{example.id}#{i}", "segments": segments, "query": example.query})
    return requests


def bench_batch(args: argparse.Namespace) -> None:
    """Throughput of the same batch job in one process and on (local) Ray."""
    from ..batch.job import BatchJob

    if args.requests < 1:
        raise QfsumError("--requests must be >= 1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    requests = out / "requests.jsonl"
    requests.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                                for r in qmsum_requests(args.data, args.split, args.requests)))
    results = {}
    for executor in ("local", "ray"):
        output = out / f"output-{executor}.jsonl"
        output.unlink(missing_ok=True)  # a fresh measurement, not a resume
        job = BatchJob(requests, output, args.pipeline, executor, args.ray_address, args.workers, args.block_size,
                       progress=not args.no_progress)
        report = job.run()
        print(report.summary_line(output), file=sys.stderr)
        results[executor] = {"records": report.computed, "seconds": round(report.seconds, 2),
                             "records_per_s": round(report.throughput, 3), "workers": report.workers}
    summary = {"pipeline": args.pipeline, "requests": args.requests, "block_size": args.block_size, **results}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{'executor':<10}{'workers':>8}{'records':>9}{'seconds':>10}{'rec/s':>9}")
    for executor, r in results.items():
        print(f"{executor:<10}{r['workers']:>8}{r['records']:>9}{r['seconds']:>10.1f}{r['records_per_s']:>9.2f}")
    print(f"wrote {out}/results.json")

"""`qfsum batch` and `qfsum bench batch`: command bodies and flags (imports stay lazy)."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from ..errors import QfsumError
from . import EXECUTORS, RAY_MIN_CPUS


EXIT_CODES = """exit status:
  0  every record has a summary in --output
  1  the job finished, but some records are error lines {"id", "error"} in --output
     (bad JSON, rejected by the pipeline, or failing it); the summary line counts them
  2  nothing was done or the job stopped: one line on stderr says why (bad input file,
     unwritable or full --output folder, unknown pipeline); rerun to resume"""
EXIT_SOME_ERRORS = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of `qfsum batch`, and its exit codes in --help."""
    p.epilog = EXIT_CODES
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--input", "-i", required=True, help="JSONL requests: id, document or segments, query")
    p.add_argument("--output", "-o", required=True, help="JSONL answers, in input order; rerun to resume")
    p.add_argument("--pipeline", "-p", default="default", help="pipeline name, saved directory, or module:factory")
    _execution_arguments(p)
    p.add_argument("--executor", default="auto", choices=EXECUTORS,
                   help=f"auto (default: Ray given a cluster address or RAY_ADDRESS, or from {RAY_MIN_CPUS} CPUs; "
                        "else this process), local (this process only) or ray")


def _execution_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--workers", type=int, default=None, help="Ray actors, one pipeline each (default: one per CPU)")
    p.add_argument("--block-size", type=int, default=16, help="records per model batch and per part file (default 16)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def batch(args: argparse.Namespace) -> None:
    """`qfsum batch`: the body of the command; exits 1 if some records became error lines."""
    from .job import BatchJob

    job = BatchJob(args.input, args.output, args.pipeline, args.executor, args.ray_address, args.workers,
                   args.block_size, progress=not args.no_progress)
    report = job.run()
    print(report.summary_line(Path(args.output)))
    if report.errors:
        raise SystemExit(EXIT_SOME_ERRORS)


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of `qfsum bench batch`."""
    p.add_argument("--data", required=True, help="QMSum folder (all splits unless --split), meeting file or .jsonl")
    p.add_argument("--split", default=None, help="only this split of a QMSum folder")
    p.add_argument("--requests", type=int, default=2000, help="requests to make, cycling the queries (default 2000)")
    p.add_argument("--pipeline", "-p", default="default", help="pipeline name, saved directory, or module:factory")
    p.add_argument("--out", default="runs/bench-batch", help="folder for the requests, outputs and results.json")
    _execution_arguments(p)


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
    from .job import BatchJob

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

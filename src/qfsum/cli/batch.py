"""`qfsum batch`: summarize a JSONL file of requests, resumably (imports stay lazy)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..batch import EXECUTORS, RAY_MIN_CPUS
from ..threads import add_threads_argument, parse_threads, set_threads


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
    execution_arguments(p)
    p.add_argument("--executor", default="auto", choices=EXECUTORS,
                   help=f"auto (default: Ray given a cluster address or RAY_ADDRESS, or from {RAY_MIN_CPUS} CPUs; "
                        "else this process), local (this process only) or ray")
    add_threads_argument(p, workers_note=" (local executor; each Ray actor: 1)")


def execution_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of how a batch runs, shared with `qfsum bench batch`."""
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--workers", type=int, default=None, help="Ray actors, one pipeline each (default: one per CPU)")
    p.add_argument("--block-size", type=int, default=16, help="records per model batch and per part file (default 16)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def batch(args: argparse.Namespace) -> None:
    """`qfsum batch`: the body of the command; exits 1 if some records became error lines."""
    from .. import quiet
    from ..batch.job import BatchJob

    threads = parse_threads(args.threads)
    set_threads(threads)  # this process: the local executor's pipeline; Ray actors get `threads` or 1
    quiet.hide_native_stderr()  # Ray's core-worker lines (unless -v)
    job = BatchJob(args.input, args.output, args.pipeline, args.executor, args.ray_address, args.workers,
                   args.block_size, progress=not args.no_progress, threads=threads)
    report = job.run()
    print(report.summary_line(Path(args.output)))
    if report.errors:
        raise SystemExit(EXIT_SOME_ERRORS)


def register(sub: Any) -> None:
    """Add `batch` to the top-level subparsers."""
    p = sub.add_parser("batch", help="summarize a JSONL file of requests, in this process or on Ray (resumable, exactly once)")
    add_arguments(p)
    p.set_defaults(func=batch)

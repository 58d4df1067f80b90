"""Wall time of `qfsum summarize` at several torch thread counts, with and without OpenMP's
passive wait policy, against qfsum's default choice (`qfsum.threads.default_threads`).

Usage: python benchmarks/threads.py [--pipelines extractive default] [--repeat 3] [--document FILE]

Each run is a new `qfsum summarize` process (imports, model loading and the answers, as a user
waits for them) on examples/meeting.txt with three questions. Settings:
- threads: 1, 2 and the default choice (`--threads N`);
- wait policy: PASSIVE (what qfsum sets) or the OpenMP runtime's own default (an empty
  OMP_WAIT_POLICY, which qfsum leaves alone: libgomp then spins a while before it sleeps).
Prints a Markdown table: median seconds over `--repeat` runs (the settings interleaved, so a
change in load hits them all) and the ratio to the default choice (> 1: slower than the default). Run it on the machine you care about, idle or as loaded as it is
in use; the point of PASSIVE shows on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from qfsum.threads import default_threads

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ("What did they decide?", "What are the next steps?", "Who disagreed, and why?")


POLICIES = {"PASSIVE": "PASSIVE", "": "runtime default"}  # OMP_WAIT_POLICY value -> label


def settings(default: int) -> list[tuple[int, str]]:
    """(threads, OMP_WAIT_POLICY) to measure: the default choice first, then 1 and 2, each with both policies."""
    counts = [default] + [n for n in (1, 2) if n != default]
    return [(n, policy) for n in counts for policy in POLICIES]


def run_once(pipeline: str, document: Path, threads: int, policy: str) -> float:
    """Seconds one `qfsum summarize` process takes; fails loudly if it fails."""
    env = dict(os.environ, OMP_WAIT_POLICY=policy, HF_HUB_OFFLINE="1")
    env.pop("OMP_NUM_THREADS", None)  # --threads decides
    command = [sys.executable, "-m", "qfsum.cli", "summarize", str(document), "--pipeline", pipeline,
               "--threads", str(threads), "--json"]
    for query in QUERIES:
        command += ["-q", query]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, env=env, timeout=3600)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr.decode(errors='replace')}")
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipelines", nargs="+", default=["extractive", "default"], help="pipelines to time")
    parser.add_argument("--repeat", type=int, default=3, help="runs per setting; the median is shown (default 3)")
    parser.add_argument("--document", type=Path, default=ROOT / "examples" / "meeting.txt", help="document to summarize")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    default = default_threads()
    grid = settings(default)
    print(f"qfsum summarize, {len(QUERIES)} questions on {args.document.name}, median of {args.repeat} "
          f"({date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, default choice {default} threads)\n")
    print("| pipeline | threads | OMP_WAIT_POLICY | seconds | vs default |")
    print("| --- | ---: | --- | ---: | ---: |")
    for pipeline in args.pipelines:
        run_once(pipeline, args.document, default, "PASSIVE")  # warm-up: file caches, the dequantized model
        runs: dict[tuple[int, str], list[float]] = {setting: [] for setting in grid}
        for _ in range(args.repeat):
            for threads, policy in grid:
                runs[threads, policy].append(run_once(pipeline, args.document, threads, policy))
        medians = {setting: statistics.median(seconds) for setting, seconds in runs.items()}
        base = medians[default, "PASSIVE"]
        for (threads, policy), seconds in medians.items():
            label = f"{threads} (default)" if threads == default else str(threads)
            print(f"| {pipeline} | {label} | {POLICIES[policy]} | {seconds:.2f} | {seconds / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()

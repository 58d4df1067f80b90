"""A batch job: summarize every record of a JSONL file, resumably, in one process or on Ray.

Input records use the JSONL example format (`id`, `document` or `segments`, `query`); each gets
one output line `{"id", "query", "summary", "evidence", "timings"}`, or `{"id", "error"}` if the
record is bad (malformed, rejected by the pipeline, or failing it in any other way): a bad record
never stops the job. Output lines follow the input order.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..errors import QfsumError
from ..readers import decode_text, jsonl_example, parse_json
from ..text import require_unicode
from . import EXECUTORS, RAY_MIN_CPUS
from .parts import PartStore, check_writable
from .work import check_pipeline, error_line, load_pipeline, summarize_block

@dataclass(frozen=True)
class Record:
    """One input record: its id and its JSON text, or why it cannot be summarized."""

    id: str
    line: str
    error: str | None = None


@dataclass
class JobReport:
    """What a run did."""

    total: int  # records in the input
    skipped: int  # already done by an earlier run
    computed: int  # done by this run (summarized or error lines)
    errors: int  # error lines in the output, this run's and earlier runs'
    seconds: float
    executor: str
    workers: int

    @property
    def throughput(self) -> float:
        """Records done per second by this run."""
        return self.computed / self.seconds if self.seconds > 0 else 0.0

    def summary_line(self, output: Path) -> str:
        """The line `qfsum batch` prints at the end."""
        return (f"batch: {self.computed} records in {self.seconds:.1f} s ({self.throughput:.2f} records/s, "
                f"{self.executor}, {self.workers} worker{'s' * (self.workers != 1)}); {self.skipped} already done; "
                f"{self.total} in {output}, {self.errors} error line{'s' * (self.errors != 1)}")


def read_records(path: str | Path) -> list[Record]:
    """Every record of a JSONL file, streamed (a corpus may be far larger than one document's size
    limit). A bad line becomes a record with an `error`, named by its `id` or, without a usable one,
    `line-N`. The file as a whole fails with a one-line error: missing, empty, no valid record at all
    (not a JSONL file of requests), or an id twice (which answer would be whose?).
    """
    path = Path(path)
    if path.suffix.lower() != ".jsonl":
        raise QfsumError(f"{path}: expected a .jsonl file (one request per line)")
    if not path.is_file():
        raise QfsumError(f"{path}: no such file")
    records: list[Record] = []
    seen: dict[str, int] = {}
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):  # JSON strings hold no raw newline: b"\n" splits records
            record = _record(raw, lineno, f"{path}:{lineno}")
            if record is None:
                continue
            if record.id in seen:
                raise QfsumError(f"{path}:{lineno}: duplicate id '{record.id}' (first on line {seen[record.id]})")
            seen[record.id] = lineno
            records.append(record)
    if not records:
        raise QfsumError(f"{path}: no records (the file is empty)")
    if all(r.error for r in records):
        raise QfsumError(f"{records[0].error} (and no line of the file is a valid request)")
    return records


def _record(raw: bytes, lineno: int, where: str) -> Record | None:
    """One input line as a Record (None for a blank line); validated now so that a bad record is
    answered with an error line at once, not sent to a worker."""
    fallback = f"line-{lineno}"
    try:
        text = decode_text(raw, where)
        if not text.strip():
            return None
        data = parse_json(text, where)
        if not isinstance(data, dict):
            raise QfsumError(f"{where}: expected a JSON object")
        id = _record_id(data.get("id", fallback), where)
    except QfsumError as err:
        return Record(fallback, "", str(err))
    try:
        jsonl_example({**data, "id": id}, where)
    except QfsumError as err:  # some messages name the document, not the line: name the line too
        return Record(id, "", str(err) if str(err).startswith(where) else f"{where}: {err}")
    return Record(id, text.strip())


def _record_id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise QfsumError(f"{where}: 'id' must be a string or an integer")
    return require_unicode(str(value), f"{where}: id")


def blocks(records: Sequence[Record], size: int) -> Iterator[Sequence[Record]]:
    """Consecutive slices of at most `size` records."""
    for i in range(0, len(records), size):
        yield records[i : i + size]


def usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def choose_executor(requested: str, ray_address: str | None) -> tuple[str, str]:
    """(executor, why) for `--executor`: `auto` starts Ray only where it can help (a cluster, or
    enough CPUs for a pool of pipelines to beat one process)."""
    has_ray = importlib.util.find_spec("ray") is not None
    if requested == "ray" and not has_ray:
        raise QfsumError("--executor ray needs Ray: pip install 'qfsum[batch]'")
    if requested != "auto":
        return requested, "--executor"
    if ray_address or os.environ.get("RAY_ADDRESS"):
        if not has_ray:
            raise QfsumError("a Ray address is given but Ray is not installed: pip install 'qfsum[batch]'")
        return "ray", "auto: a Ray cluster address is given"
    cpus = usable_cpus()
    if cpus >= RAY_MIN_CPUS and has_ray:
        return "ray", f"auto: {cpus} CPUs"
    why = f"{cpus} CPUs" if has_ray else "Ray is not installed"
    return "local", f"auto: {why}; a local Ray helps from {RAY_MIN_CPUS} CPUs or on a cluster (--executor ray)"


@dataclass
class BatchJob:
    """Summarize `input` into `output`; rerunning after a crash skips what is already written."""

    input: str | Path
    output: str | Path
    pipeline: str = "default"
    executor: str = "auto"  # auto | local (this process only) | ray
    ray_address: str | None = None  # None: start a local Ray; else a cluster address (ray://..., auto)
    workers: int | None = None  # Ray actors, each with its own pipeline (default: one per CPU)
    block_size: int = 16  # records per model batch and per part file
    progress: bool = True
    threads: int | None = None  # torch threads in each Ray actor (default 1: an actor reserves one CPU)

    def run(self) -> JobReport:
        """Do what is left of the job, merge, and report; a bad record is an error line, not a failure."""
        self._check_arguments()
        store = PartStore(self.output)
        check_writable(store.output.parent)  # before any work: a read-only folder fails now, not after it
        records = read_records(self.input)
        order = [r.id for r in records]
        done = store.done(set(order))
        if store.is_merged(done, order):
            return JobReport(len(order), len(order), 0, sum(line.error for line in done.values()), 0.0, "none", 0)
        pending = [r for r in records if r.id not in done]
        started = time.perf_counter()
        executor, workers = self._run(pending, store, initial=len(records) - len(pending))
        seconds = time.perf_counter() - started
        merged = store.merge(order)
        errors = sum(line.error for line in merged.values())
        return JobReport(len(records), len(records) - len(pending), len(pending), errors, seconds, executor, workers)

    def _check_arguments(self) -> None:
        if self.block_size < 1:
            raise QfsumError("--block-size must be >= 1")
        if self.workers is not None and self.workers < 1:
            raise QfsumError("--workers must be >= 1")
        if self.executor not in EXECUTORS:
            raise QfsumError(f"unknown executor '{self.executor}' ({', '.join(EXECUTORS)})")
        if Path(self.output).resolve() == Path(self.input).resolve():
            raise QfsumError("--output is the input file: pick another --output")

    def _run(self, pending: Sequence[Record], store: PartStore, initial: int) -> tuple[str, int]:
        """Write a part for every pending record; return (executor, workers)."""
        bad = [r for r in pending if r.error]
        if bad:  # answered at once, in one part: no pipeline needed
            store.write([error_line(r.id, r.error) for r in bad])
        good = [r for r in pending if not r.error]
        if not good:
            return "none", 0
        executor, why = choose_executor(self.executor, self.ray_address)
        if executor == "local":
            pipeline = load_pipeline(self.pipeline)
        else:
            from .ray_runner import connect, run_on_ray

            check_pipeline(self.pipeline)  # here, not in the actors: a typo is one line, not a remote traceback
            connect(self.ray_address)
        # said once set-up has worked, so that a set-up error stays the only stderr line
        print(f"batch: executor {executor} ({why})", file=sys.stderr)
        with tqdm(total=initial + len(pending), initial=initial + len(bad), unit="rec", desc="batch",
                  disable=not self.progress, dynamic_ncols=True) as bar:
            if executor == "ray":
                return executor, run_on_ray(good, store, bar, self.pipeline, self.block_size, self.workers,
                                             self.threads)
            for block in blocks(good, self.block_size):
                store.write(summarize_block(pipeline, [r.id for r in block], [r.line for r in block]))
                bar.update(len(block))
            return executor, 1

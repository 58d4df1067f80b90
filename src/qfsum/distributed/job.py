"""A batch job: summarize every record of a JSONL file, resumably, in one process or on Ray.

Input records use the JSONL example format (`id`, `document` or `segments`, `query`); each gets
one output line `{"id", "query", "summary", "evidence", "timings"}` (or `{"id", "error"}` if the
pipeline rejects that record). Output lines follow the input order.
"""

from __future__ import annotations

import importlib
import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from ..errors import QfsumError
from ..readers import decode_text, jsonl_example
from .parts import PartStore


class BatchPipeline(Protocol):
    """What a batch job needs of a pipeline (a `qfsum.Pipeline` or a user factory's object)."""

    def summarize_batch(self, items: Sequence[tuple[Any, str]]) -> list[Any]: ...


@dataclass(frozen=True)
class Record:
    """One input record: its id and its JSON text (parsed again where it is summarized)."""

    id: str
    line: str


@dataclass
class JobReport:
    """What a run did."""

    total: int  # records in the input
    skipped: int  # already done by an earlier run
    computed: int  # summarized by this run
    seconds: float
    executor: str
    workers: int

    @property
    def throughput(self) -> float:
        """Records summarized per second by this run."""
        return self.computed / self.seconds if self.seconds > 0 else 0.0

    def summary_line(self, output: Path) -> str:
        return (f"batch: {self.computed} records in {self.seconds:.1f} s ({self.throughput:.2f} records/s, "
                f"{self.executor}, {self.workers} worker{'s' * (self.workers != 1)}); {self.skipped} already done; "
                f"{self.total} in {output}")


def load_pipeline(spec: str) -> BatchPipeline:
    """A packaged pipeline name, a saved pipeline directory, or `module:factory` (a callable
    returning an object with `summarize_batch`, for custom pipelines)."""
    from ..pipeline import Pipeline

    if ":" in spec and not Path(spec).exists():
        module, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise QfsumError(f"cannot load pipeline factory '{spec}' ({err})") from None
        return factory()
    return Pipeline.load(spec)


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of every non-empty line, streamed: a corpus may be far larger than
    the size limit of one document, so the readers' whole-file JSONL reader does not fit here."""
    if not path.is_file():
        raise QfsumError(f"{path}: no such file")
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):  # JSON strings hold no raw newline: b"\n" splits records
            line = decode_text(raw, f"{path}:{lineno}")
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as err:
                raise QfsumError(f"{path}:{lineno}: malformed JSON ({err.msg})") from None
            if not isinstance(data, dict):
                raise QfsumError(f"{path}:{lineno}: expected a JSON object")
            yield lineno, data


def read_records(path: str | Path) -> list[Record]:
    """Every record of a JSONL file, validated (one-line errors name the line); ids must be unique.

    A record without `id` is called `line-N` after its line number.
    """
    path = Path(path)
    if path.suffix.lower() != ".jsonl":
        raise QfsumError(f"{path}: expected a .jsonl file (one request per line)")
    records: list[Record] = []
    seen: dict[str, int] = {}
    for lineno, data in _json_lines(path):
        where = f"{path}:{lineno}"
        id = str(data.get("id", f"line-{lineno}"))
        jsonl_example({**data, "id": id}, where)  # validate now: a bad line fails fast, not hours in
        if id in seen:
            raise QfsumError(f"{where}: duplicate id '{id}' (first on line {seen[id]})")
        seen[id] = lineno
        records.append(Record(id, json.dumps(data, ensure_ascii=False)))
    if not records:
        raise QfsumError(f"{path}: no records (the file is empty)")
    return records


def summarize_block(pipeline: BatchPipeline, ids: Sequence[str], lines: Sequence[str]) -> list[str]:
    """Output lines for one block of records; the writer sees the block as one batch."""
    examples = [jsonl_example({**json.loads(line), "id": id}, id) for id, line in zip(ids, lines, strict=True)]
    try:
        summaries = pipeline.summarize_batch([(e.document, e.query) for e in examples])
        results = [{"id": e.id, **s.to_dict()} for e, s in zip(examples, summaries, strict=True)]
    except QfsumError:
        results = [_one(pipeline, e) for e in examples]  # find the bad record; keep the others
    return [json.dumps(r, ensure_ascii=False) for r in results]


def _one(pipeline: BatchPipeline, example: Any) -> dict[str, Any]:
    try:
        return {"id": example.id, **pipeline.summarize_batch([(example.document, example.query)])[0].to_dict()}
    except QfsumError as err:
        return {"id": example.id, "error": str(err)}


def blocks(records: Sequence[Record], size: int) -> Iterator[Sequence[Record]]:
    for i in range(0, len(records), size):
        yield records[i : i + size]


@dataclass
class BatchJob:
    """Summarize `input` into `output`; rerunning after a crash skips what is already written."""

    input: str | Path
    output: str | Path
    pipeline: str = "default"
    executor: str = "ray"  # ray | local (this process only)
    ray_address: str | None = None  # None: start a local Ray; else a cluster address (ray://..., auto)
    workers: int | None = None  # Ray actors, each with its own pipeline (default: one per CPU)
    block_size: int = 16  # records per model batch and per part file
    progress: bool = True

    def run(self) -> JobReport:
        if self.block_size < 1:
            raise QfsumError("--block-size must be >= 1")
        if self.workers is not None and self.workers < 1:
            raise QfsumError("--workers must be >= 1")
        if self.executor not in ("ray", "local"):
            raise QfsumError(f"unknown executor '{self.executor}' (ray or local)")
        records = read_records(self.input)
        store = PartStore(self.output)
        order = [r.id for r in records]
        if store.output.exists() and not store.folder.exists():
            return self._already_complete(store, order)
        done = store.done()
        pending = [r for r in records if r.id not in done]
        started = time.perf_counter()
        workers = 1
        with tqdm(total=len(records), initial=len(records) - len(pending), unit="rec", desc="batch",
                  disable=not self.progress, dynamic_ncols=True) as bar:
            if pending:
                if self.executor == "local":
                    self._run_local(pending, store, bar)
                else:
                    from .ray_runner import run_on_ray

                    workers = run_on_ray(pending, store, bar, self.pipeline, self.block_size, self.workers,
                                         self.ray_address)
        seconds = time.perf_counter() - started
        store.merge(order)
        return JobReport(len(records), len(records) - len(pending), len(pending), seconds, self.executor, workers)

    def _run_local(self, pending: Sequence[Record], store: PartStore, bar: tqdm) -> None:
        pipeline = load_pipeline(self.pipeline)
        for block in blocks(pending, self.block_size):
            store.write(summarize_block(pipeline, [r.id for r in block], [r.line for r in block]))
            bar.update(len(block))

    def _already_complete(self, store: PartStore, order: list[str]) -> JobReport:
        lines = store.output.read_text(encoding="utf-8").splitlines()
        ids = [str(json.loads(line).get("id")) for line in lines if line.strip()]
        if ids != order:
            raise QfsumError(f"{store.output} exists and is not this input's output: remove it or pick another --output")
        return JobReport(len(order), len(order), 0, 0.0, self.executor, 0)


def default_workers(cpus: float, cpus_per_worker: float = 1.0) -> int:
    """One actor per `cpus_per_worker` CPUs, at least one."""
    return max(1, math.floor(cpus / cpus_per_worker))

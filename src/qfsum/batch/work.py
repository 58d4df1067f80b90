"""The work of a batch job, shared by both executors: load a pipeline, summarize a block of records
into output lines (a failing record becomes an error line, never a failed block)."""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from ..errors import QfsumError
from ..pipeline import summarize_each
from ..readers import jsonl_example

MAX_ERROR_CHARS = 500  # an error line's message, cut to this length


class BatchPipeline(Protocol):
    """What a batch job needs of a pipeline (a `qfsum.Pipeline` or a user factory's object)."""

    def summarize_batch(self, items: Sequence[tuple[Any, str]]) -> list[Any]: ...


def load_pipeline(spec: str) -> BatchPipeline:
    """A packaged pipeline name, a saved pipeline directory, or `module:factory` (a callable
    returning an object with `summarize_batch`, for custom pipelines)."""
    from ..pipeline import Pipeline

    factory = _factory(spec)
    return factory() if factory else Pipeline.load(spec)


def check_pipeline(spec: str) -> None:
    """Fail early, without loading models, on a spec that `load_pipeline` could not load."""
    from ..pipeline import load_config

    if _factory(spec) is None:
        load_config(spec)


def _factory(spec: str) -> Any:
    """The callable a `module:factory` spec names, or None for a pipeline name or directory."""
    if ":" not in spec or Path(spec).exists():
        return None
    module, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise QfsumError(f"cannot load pipeline factory '{spec}' ({err})") from None


def summarize_block(pipeline: BatchPipeline, ids: Sequence[str], lines: Sequence[str]) -> list[str]:
    """Output lines for one block of records, in order; a record that cannot be read or summarized gets
    an error line, and its block-mates are answered (`pipeline.summarize_each` isolates the failures)."""
    lines_out: list[str | None] = [None] * len(ids)
    readable = []  # (position, example)
    for i, (id, line) in enumerate(zip(ids, lines, strict=True)):
        try:
            readable.append((i, _example(id, line)))
        except Exception as err:  # noqa: BLE001 -- whatever the cause, this record gets an error line
            lines_out[i] = error_line(id, err)
    results = summarize_each(pipeline.summarize_batch, [(e.document, e.query) for _, e in readable])
    for (i, _), result in zip(readable, results, strict=True):
        lines_out[i] = error_line(ids[i], result) if isinstance(result, Exception) else _result_line(ids[i], result)
    return [line for line in lines_out if line is not None]


def _example(id: str, line: str) -> Any:
    return jsonl_example({**json.loads(line), "id": id}, id)


def _result_line(id: str, summary: Any) -> str:
    try:
        line = json.dumps({"id": id, **summary.to_dict()}, ensure_ascii=False)
        line.encode("utf-8")  # a lone surrogate in a custom pipeline's output fails here, for this record only
    except Exception as err:  # noqa: BLE001 -- a custom pipeline's odd summary: this record's error line
        return error_line(id, err)
    return line


def error_line(id: str, err: Exception | str) -> str:
    """`{"id", "error"}` with a one-line message (a QfsumError's own words, else the exception type too)."""
    message = err if isinstance(err, str | QfsumError) else f"{type(err).__name__}: {err}"
    text = " ".join(str(message).split())[:MAX_ERROR_CHARS]
    return json.dumps({"id": id, "error": text})  # ASCII: escapes whatever a message holds


def default_workers(cpus: float, cpus_per_worker: float = 1.0) -> int:
    """One actor per `cpus_per_worker` CPUs, at least one."""
    return max(1, math.floor(cpus / cpus_per_worker))

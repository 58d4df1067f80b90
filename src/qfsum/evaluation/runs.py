"""Reading an `evaluate` run folder back: its rows, metrics and config, and what the rows leave out.

A run folder holds `run.json` (pipeline config, data label `PATH:SPLIT`, example ids, support
scorer), `predictions.jsonl` (one row per example) and `metrics.json`. Rows record the evidence
as segment indices and, since the report exists, as character spans into the document, its query
type and document length; for older rows these are rebuilt from the data the run names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..document import Example
from ..errors import QfsumError

_QMSUM_ID = re.compile(r"-([gs])\d+$")  # readers.qmsum_examples: MEETING-g0 (general), MEETING-s0 (specific)


def query_type(example_id: str) -> str | None:
    """QMSum's query type from an example id: "general", "specific", or None for other data."""
    match = _QMSUM_ID.search(example_id)
    return None if match is None else {"g": "general", "s": "specific"}[match.group(1)]


@dataclass
class Run:
    """One `evaluate` run folder, read back."""

    path: Path
    rows: list[dict[str, Any]]  # in the run's example order
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # run.json; {} for a folder without one

    @property
    def name(self) -> str:
        """The pipeline's name, or the folder's."""
        return str(self.config.get("pipeline", {}).get("name") or self.path.name)


def load_run(path: Path) -> Run:
    """Read an `evaluate` run folder; QfsumError if it is not one."""
    from .bootstrap import read_rows

    path = Path(path)
    if not (path / "predictions.jsonl").is_file():
        raise QfsumError(f"{path}: not an evaluate run folder (no predictions.jsonl)")
    by_id = read_rows(path / "predictions.jsonl")
    config = _json(path / "run.json")
    order = [i for i in config.get("ids", []) if i in by_id] or list(by_id)
    return Run(path, [by_id[i] for i in order], _json(path / "metrics.json"), config)


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise QfsumError(f"{path}: not valid JSON") from None
    return data if isinstance(data, dict) else {}


def run_examples(run: Run) -> dict[str, Example]:
    """The run's examples by id, read again from the data its `run.json` names; {} when that data
    is gone or unreadable (the report then leaves out what needs it)."""
    from ..readers import read_examples

    label = str(run.config.get("data", ""))
    data, _, split = label.rpartition(":")
    if not data or not Path(data).exists():
        return {}
    try:
        examples = read_examples(data, None if split in ("", "None") else split)
    except QfsumError:
        return {}
    return {e.id: e for e in examples}


def evidence_texts(row: dict[str, Any], example: Example | None, pipeline: dict[str, Any] | None = None) -> list[str]:
    """The evidence the writer was given for `row`: its recorded spans of the document or, for rows
    from before they were recorded, its segment indices resolved by the run's segmenter."""
    if example is None:
        return []
    text = example.document.text
    if row.get("evidence_spans") is not None:
        return [text[a:b] for a, b in row["evidence_spans"]]
    if not pipeline or "segmenter" not in pipeline:
        return []
    segments = _segments(example, pipeline)
    return [segments[i].text for i in row.get("evidence", []) if 0 <= i < len(segments)]


def _segments(example: Example, pipeline: dict[str, Any]) -> Sequence[Any]:
    from ..segment import Segmenter, SegmenterConfig

    return Segmenter(SegmenterConfig(**pipeline["segmenter"]))(example.document)

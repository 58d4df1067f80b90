"""Bootstrap intervals over examples: of one run's mean, and of the paired difference of two runs.

Percentile bootstrap (Efron & Tibshirani 1993, ch. 13): resample the examples with replacement
`draws` times, take the mean of each resample, and report the 2.5th and 97.5th percentiles. The
paired version resamples per-example differences B - A over the examples both runs scored, so what
the two runs share (the example's difficulty) cancels out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import QfsumError

DRAWS = 10_000
CHUNK = 5_000_000  # index entries drawn at once (40 MB of int64)
PER_EXAMPLE_FILES = ("per_example.jsonl", "predictions.jsonl")  # evaluate-extractor, evaluate


@dataclass(frozen=True)
class Interval:
    """A mean with its 95 % bootstrap interval over `n` examples."""

    mean: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class PairedDifference:
    """B - A on one metric over the `n` examples both runs have it for."""

    metric: str
    n: int
    mean_a: float
    mean_b: float
    difference: float  # mean of B - A
    low: float  # 95 % interval of the difference
    high: float
    p_not_better: float  # share of draws where B does not beat A: a one-sided p-value


def read_rows(run: Path) -> dict[str, dict]:
    """Per-example rows by id: a run folder of `evaluate` (predictions.jsonl) or `evaluate-extractor`
    (per_example.jsonl), or either file itself."""
    path = Path(run)
    if path.is_dir():
        found = [path / name for name in PER_EXAMPLE_FILES if (path / name).is_file()]
        if not found:
            raise QfsumError(f"{path}: not a run folder (no {' or '.join(PER_EXAMPLE_FILES)})")
        path = found[0]
    elif not path.is_file():
        raise QfsumError(f"{path}: no such run folder or file")
    text = path.read_text()
    lines = text.splitlines()
    rows: dict[str, dict] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows[str(row["id"])] = row
        except (json.JSONDecodeError, KeyError, TypeError):
            if number == len(lines) and not text.endswith("\n"):
                continue  # a last line torn by a killed run: `evaluate` drops it on resume too
            raise QfsumError(f"{path}:{number}: not a JSON object with an 'id'") from None
    if not rows:
        raise QfsumError(f"{path}: holds no examples")
    return rows


def _resampled_means(values: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Means of `draws` resamples (with replacement) of `values`.

    One (draws, n) index matrix while it stays under CHUNK entries (every published figure: the
    same draws as before); in slices of draws beyond, so a large data set does not need gigabytes.
    """
    n = len(values)
    per_slice = max(1, CHUNK // n)
    if draws <= per_slice:
        return values[rng.integers(0, n, size=(draws, n))].mean(axis=1)
    return np.concatenate([values[rng.integers(0, n, size=(min(per_slice, draws - i), n))].mean(axis=1)
                           for i in range(0, draws, per_slice)])


def interval(values: Sequence[float], draws: int = DRAWS, seed: int = 0) -> Interval | None:
    """The mean of `values` and its 95 % percentile-bootstrap interval; None for no values."""
    array = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if not len(array):
        return None
    means = _resampled_means(array, draws, np.random.default_rng(seed))
    low, high = np.percentile(means, [2.5, 97.5])
    return Interval(float(array.mean()), float(low), float(high), len(array))


def paired_differences(a: Mapping[str, dict], b: Mapping[str, dict], metrics: Sequence[str],
                       draws: int = DRAWS, seed: int = 0) -> list[PairedDifference]:
    """Paired bootstrap of B - A for each metric, over the examples both runs have it for.

    One random generator serves the metrics in order (as `benchmarks/paired_bootstrap.py` always
    did, so its published figures reproduce). A metric no shared example has is left out.
    """
    rng = np.random.default_rng(seed)
    out = []
    for metric in metrics:
        ids = [i for i in a if i in b and a[i].get(metric) is not None and b[i].get(metric) is not None]
        if not ids:
            continue
        diff = np.array([b[i][metric] - a[i][metric] for i in ids], dtype=np.float64)
        means = _resampled_means(diff, draws, rng)
        low, high = np.percentile(means, [2.5, 97.5])
        mean_a = float(np.mean([a[i][metric] for i in ids]))
        out.append(PairedDifference(metric, len(ids), mean_a, mean_a + float(diff.mean()), float(diff.mean()),
                                    float(low), float(high), float(np.mean(means <= 0))))
    return out


def check_same_examples(a: Mapping[str, dict], b: Mapping[str, dict], names: tuple[str, str] = ("A", "B")) -> list[str]:
    """The ids both runs scored, after checking they are the same examples (same query and
    references where the rows record them). QfsumError when they share none or disagree."""
    shared = [i for i in a if i in b]
    if not shared:
        raise QfsumError(f"runs {names[0]} and {names[1]} share no example id ({len(a)} and {len(b)} examples): "
                         "were they run on the same data?")
    for i in shared:
        for key in ("query", "references"):
            if key in a[i] and key in b[i] and a[i][key] != b[i][key]:
                raise QfsumError(f"example '{i}' has a different {key} in {names[0]} and {names[1]}: "
                                 "the runs are on different data")
    return shared


def format_differences(differences: Sequence[PairedDifference]) -> list[str]:
    """The table `qfsum compare` prints: one line per metric. ROUGE-like figures (F1 x 100) with 2
    decimals, shares in [0, 1] (faithfulness) with 3."""
    lines = [f"{'metric':<26}{'n':>5}{'A':>9}{'B':>9}{'B-A':>9}   {'95% interval':<18}   p(B<=A)"]
    for d in differences:
        digits = 3 if max(abs(d.mean_a), abs(d.mean_b)) <= 1 else 2
        span = f"[{d.low:+.{digits}f}, {d.high:+.{digits}f}]"
        lines.append(f"{d.metric:<26}{d.n:>5}{d.mean_a:>9.{digits}f}{d.mean_b:>9.{digits}f}"
                     f"{d.difference:>+9.{digits}f}   {span:<18}   {d.p_not_better:.4f}")
    return lines

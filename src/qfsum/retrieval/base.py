"""The scorer protocol, its config, and the registry that builds scorers by kind."""

from __future__ import annotations

import hashlib
import json
import sys
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import numpy as np

from ..document import Segment
from ..errors import QfsumError

T = TypeVar("T")
CACHE_BYTES = 256 * 2**20  # per cache of per-document work: a bound in bytes, besides the count
SEGMENT_OVERHEAD = 200  # bytes of one Segment object besides its text (instance, dict, ints)


class Scorer(Protocol):
    """Scores every segment of one document for a query."""

    def score(self, query: str, segments: Sequence[Segment]) -> np.ndarray:
        """Return a float array of shape (len(segments),); higher is more relevant."""
        ...


@dataclass
class ScorerConfig:
    """Which scorer to build."""

    kind: str = "hybrid"  # lead | bm25 | dense | hybrid | relreg (a cross-encoder)
    model: str = "minilm"  # dense, hybrid, relreg: sentence-transformers model name, directory or hub id
    rrf_k: int = 60  # hybrid: the k of reciprocal-rank fusion, 1 / (k + rank)
    batch_size: int = 32  # dense, relreg: segments per encoder batch (batches are formed by length)
    dtype: str = "auto"  # dense, relreg: auto (bf16 autocast where the hardware has it) or float32


def rank(scores: np.ndarray) -> np.ndarray:
    """Segment indices from most to least relevant; ties keep document order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def segments_key(segments: Sequence[Segment]) -> str:
    """A cache key for one segmentation of one document."""
    digest = hashlib.sha1()
    for segment in segments:
        digest.update(f"{segment.start}:{segment.end}:".encode())
        digest.update(segment.text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


class LRUCache(Generic[T]):
    """A small least-recently-used cache for per-document work (indexes, embeddings).

    It holds at most `capacity` entries and, with `max_bytes`, at most that many bytes as `sizeof`
    counts them, so a few huge documents cannot fill memory (the newest entry is always kept).
    """

    def __init__(self, capacity: int = 64, max_bytes: int | None = None,
                 sizeof: Callable[[T], int] | None = None) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.sizeof = sizeof
        self.bytes = 0  # held, as sizeof counts (0 without it)
        self._items: OrderedDict[str, tuple[T, int]] = OrderedDict()

    def get_or_make(self, key: str, make: Callable[[], T]) -> T:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key][0]
        value = make()
        size = self.sizeof(value) if self.sizeof else 0
        self._items[key] = (value, size)
        self.bytes += size
        while len(self._items) > self.capacity or (len(self._items) > 1 and self.max_bytes is not None
                                                   and self.bytes > self.max_bytes):
            self.bytes -= self._items.popitem(last=False)[1][1]
        return value


def segments_nbytes(segments: Sequence[Segment]) -> int:
    """About the memory a list of segments holds: their texts plus a fixed cost per object."""
    return sum(sys.getsizeof(s.text) for s in segments) + SEGMENT_OVERHEAD * len(segments)


SCORER_KINDS = ("lead", "bm25", "dense", "hybrid", "relreg")


def encoder_type(directory: str | Path) -> str | None:
    """Which kind of model a directory holds, from its saved files: "cross-encoder", "bi-encoder" or None.

    sentence-transformers writes its model type into `config_sentence_transformers.json`; older
    cross-encoders are plain Hugging Face sequence classifiers without `modules.json`.
    """
    directory = Path(directory)
    try:
        saved = json.loads((directory / "config_sentence_transformers.json").read_text())
        model_type = saved.get("model_type") if isinstance(saved, dict) else None
    except (OSError, ValueError):
        model_type = None
    if model_type == "CrossEncoder":
        return "cross-encoder"
    if model_type == "SentenceTransformer" or (directory / "modules.json").is_file():
        return "bi-encoder"
    try:
        architectures = json.loads((directory / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return None
    return "cross-encoder" if any(a.endswith("ForSequenceClassification") for a in architectures) else None


def scorer_config_for_model(model: str | Path) -> ScorerConfig:
    """The scorer for a trained extractor (a directory, or the name of one shipped with qfsum): relreg
    for a cross-encoder, dense for a bi-encoder."""
    from ..assets import resolve, shipped_models

    shipped = str(model) in shipped_models()
    directory = Path(resolve(str(model)).location) if shipped else Path(model)
    kind = encoder_type(directory)
    if kind is None:
        raise QfsumError(f"{model}: neither a pipeline nor a sentence-transformers model directory")
    return ScorerConfig(kind="relreg" if kind == "cross-encoder" else "dense",
                        model=str(model) if shipped else str(directory.resolve()))


def build_scorer(config: ScorerConfig) -> Scorer:
    """Build the scorer a config names, with a clear error for unknown kinds."""
    from .cross import CrossEncoderScorer
    from .dense import DenseScorer
    from .hybrid import HybridScorer
    from .lexical import BM25Scorer, LeadScorer

    if config.kind == "lead":
        return LeadScorer()
    if config.kind == "bm25":
        return BM25Scorer()
    if config.kind == "dense":
        return DenseScorer(config.model, config.batch_size, config.dtype)
    if config.kind == "hybrid":
        return HybridScorer([BM25Scorer(), DenseScorer(config.model, config.batch_size, config.dtype)], k=config.rrf_k)
    if config.kind == "relreg":
        return CrossEncoderScorer(config.model, config.batch_size, config.dtype)
    raise QfsumError(f"unknown scorer '{config.kind}' (choose from {', '.join(SCORER_KINDS)})")

"""The scorer registry: build a scorer by kind, or the right one for a trained extractor's folder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..document import Segment
from ..errors import QfsumError
from .base import Scorer, ScorerConfig
from .cross import CrossEncoderScorer
from .dense import DenseScorer
from .hybrid import HybridScorer
from .lexical import BM25Scorer, LeadScorer

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


def best_similarity(scorer: Scorer, query: str, segments: Sequence[Segment]) -> float | None:
    """The query's highest cosine similarity with any segment, from the scorer's dense encoder (its own,
    or the one it fuses); None when it has none. Unlike fused ranks, a cosine says how well the best
    segment matches at all: how off-topic a question is."""
    dense = scorer if isinstance(scorer, DenseScorer) else next(
        (s for s in getattr(scorer, "scorers", ()) if isinstance(s, DenseScorer)), None)
    if dense is None or not segments:
        return None
    return float(dense.score(query, segments).max())

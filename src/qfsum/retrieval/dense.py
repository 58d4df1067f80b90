"""Dense bi-encoder scorer: cosine similarity of sentence-transformers embeddings."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch

from ..assets import load_sentence_encoder, resolve_dtype
from ..document import Segment
from .base import LRUCache, segments_key

PROGRESS_FROM = 20_000  # segments: a book-length input takes minutes to encode on a CPU


class DenseScorer:
    """Scores segments by cosine similarity with the query in a bi-encoder's embedding space.

    A document's segment embeddings are computed once and reused for all its queries.
    sentence-transformers sorts inputs by length before batching, so little is spent on padding;
    with dtype "auto" the encoder runs under bf16 autocast where the hardware has native bf16
    (2.4x faster than fp32 on this project's 2-core CPU, cosine agreement with fp32 > 0.9999).
    """

    def __init__(self, model: str = "minilm", batch_size: int = 32, dtype: str = "auto", cache_size: int = 64) -> None:
        self.encoder = load_sentence_encoder(model)
        self.batch_size = batch_size
        self.dtype = resolve_dtype(dtype)
        self._embeddings: LRUCache[np.ndarray] = LRUCache(cache_size)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype != torch.float32:
            return torch.autocast(self.encoder.device.type, dtype=self.dtype)
        return contextlib.nullcontext()

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-normalized embeddings, shape (len(texts), dim), float32."""
        with self._autocast():
            vectors = self.encoder.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=len(texts) >= PROGRESS_FROM,
            )
        return np.asarray(vectors, dtype=np.float32)

    def segment_embeddings(self, segments: Sequence[Segment]) -> np.ndarray:
        """Embeddings of a document's segments, cached per document."""
        return self._embeddings.get_or_make(segments_key(segments), lambda: self.encode([s.text for s in segments]))

    def score(self, query: str, segments: Sequence[Segment]) -> np.ndarray:
        passages = self.segment_embeddings(segments)
        return passages @ self.encode([query])[0]

"""Dense bi-encoder scorer: cosine similarity of sentence-transformers embeddings."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch

from ..assets import cpu_supports_bf16, load_sentence_encoder
from ..document import Segment
from .base import LRUCache, segments_key


class DenseScorer:
    """Scores segments by cosine similarity with the query in a bi-encoder's embedding space.

    A document's segment embeddings are computed once and reused for all its queries.
    sentence-transformers sorts inputs by length before batching, so little is spent on padding;
    on CPUs with native bf16 the encoder runs under bf16 autocast (2.5x faster here, cosine
    agreement with fp32 > 0.9999).
    """

    def __init__(self, model: str = "minilm", batch_size: int = 32, cache_size: int = 64) -> None:
        self.encoder = load_sentence_encoder(model)
        self.batch_size = batch_size
        self._embeddings: LRUCache[np.ndarray] = LRUCache(cache_size)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.encoder.device.type == "cpu" and cpu_supports_bf16():
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-normalized embeddings, shape (len(texts), dim), float32."""
        with self._autocast():
            vectors = self.encoder.encode(
                texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
        return np.asarray(vectors, dtype=np.float32)

    def segment_embeddings(self, segments: Sequence[Segment]) -> np.ndarray:
        """Embeddings of a document's segments, cached per document."""
        return self._embeddings.get_or_make(segments_key(segments), lambda: self.encode([s.text for s in segments]))

    def score(self, query: str, segments: Sequence[Segment]) -> np.ndarray:
        passages = self.segment_embeddings(segments)
        return passages @ self.encode([query])[0]

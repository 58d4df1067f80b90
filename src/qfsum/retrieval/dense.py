"""Dense bi-encoder scorer: cosine similarity of sentence-transformers embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..assets import autocast, load_sentence_encoder, resolve_dtype
from ..document import Segment
from ..cache import CACHE_BYTES, LRUCache, segments_key

PROGRESS_FROM = 20_000  # segments: a book-length input takes minutes to encode on a CPU
QUERY_PROMPTS = ("query",)  # prompt names a model may define for queries ...
PASSAGE_PROMPTS = ("passage", "document")  # ... and for passages (sentence-transformers calls them documents)


def defined_prompt(encoder: Any, names: Sequence[str]) -> str | None:
    """The first of `names` that the encoder defines as a non-empty prompt, else None."""
    prompts = getattr(encoder, "prompts", None) or {}
    return next((name for name in names if prompts.get(name)), None)


class DenseScorer:
    """Scores segments by cosine similarity with the query in a bi-encoder's embedding space.

    A document's segment embeddings are computed once and reused for all its queries.
    sentence-transformers sorts inputs by length before batching, so little is spent on padding;
    with dtype "auto" the encoder runs under bf16 autocast where the hardware has native bf16
    (2.5x faster than fp32 on the 2-core CPU of docs/results.md, cosine with fp32 >= 0.9999).
    Models trained with query/passage markers (RelRegTT, DPR) keep them as sentence-transformers
    prompts named "query" and "passage" (or "document"); they are applied when defined.
    `encoder` passes an already loaded model (validation during training) instead of `model`.
    """

    def __init__(
        self, model: str = "minilm", batch_size: int = 32, dtype: str = "auto", cache_size: int = 64, encoder: Any = None
    ) -> None:
        self.encoder = encoder if encoder is not None else load_sentence_encoder(model)
        self.batch_size = batch_size
        self.dtype = resolve_dtype(dtype)
        self.query_prompt = defined_prompt(self.encoder, QUERY_PROMPTS)
        self.passage_prompt = defined_prompt(self.encoder, PASSAGE_PROMPTS)
        self._embeddings: LRUCache[np.ndarray] = LRUCache(cache_size, CACHE_BYTES, lambda a: a.nbytes)

    def encode(self, texts: list[str], prompt_name: str | None = None) -> np.ndarray:
        """Unit-normalized embeddings, shape (len(texts), dim), float32; `prompt_name` names a model prompt."""
        # Optional arguments only when they matter, so any object with encode(texts, batch_size,
        # normalize_embeddings, convert_to_numpy) works (sentence-transformers' bar is off by default).
        extra: dict[str, Any] = {"prompt_name": prompt_name} if prompt_name else {}
        if len(texts) >= PROGRESS_FROM:
            extra["show_progress_bar"] = True
        with autocast(self.encoder.device.type, self.dtype):
            vectors = self.encoder.encode(
                texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, **extra
            )
        return np.asarray(vectors, dtype=np.float32)

    def segment_embeddings(self, segments: Sequence[Segment]) -> np.ndarray:
        """Embeddings of a document's segments, cached per document."""
        return self._embeddings.get_or_make(segments_key(segments), lambda: self._encode_unique(segments))

    def _encode_unique(self, segments: Sequence[Segment]) -> np.ndarray:
        # Meetings repeat short turns ("Yeah .", "Okay ."): encode each distinct text once.
        texts = [s.text for s in segments]
        unique = list(dict.fromkeys(texts))
        row = {text: i for i, text in enumerate(unique)}
        return self.encode(unique, self.passage_prompt)[[row[t] for t in texts]]

    def score(self, query: str, segments: Sequence[Segment]) -> np.ndarray:
        passages = self.segment_embeddings(segments)
        return passages @ self.encode([query], self.query_prompt)[0]

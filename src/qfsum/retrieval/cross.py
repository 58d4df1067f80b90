"""Cross-encoder scorer (RelReg): a model reads `query [SEP] segment` and outputs one relevance score."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..assets import autocast, load_cross_encoder, resolve_dtype
from ..document import Segment


class CrossEncoderScorer:
    """Scores each (query, segment) pair with a sentence-transformers `CrossEncoder` (num_labels=1).

    Unlike a bi-encoder nothing can be cached per document: every pair is a forward pass, so a
    query over a 1,000-turn meeting costs 1,000 pairs. Pairs are batched by length (the library
    sorts them) and, with dtype "auto", run under bf16 autocast where the hardware has native bf16,
    as `DenseScorer` does. A RelReg model trained by qfsum regresses the ROUGE label with an identity
    activation, so its scores are predicted labels; any other cross-encoder keeps its own activation.
    `encoder` passes an already loaded model (validation during training) instead of `model`.
    """

    def __init__(self, model: str = "minilm", batch_size: int = 32, dtype: str = "auto", encoder: Any = None) -> None:
        self.encoder = encoder if encoder is not None else load_cross_encoder(model)
        self.batch_size = batch_size
        self.dtype = resolve_dtype(dtype)

    def score(self, query: str, segments: Sequence[Segment]) -> np.ndarray:
        if not segments:
            return np.zeros(0, dtype=np.float32)
        with autocast(self.encoder.device.type, self.dtype):
            scores = self.encoder.predict(
                [(query, s.text) for s in segments],
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
            )
        return np.asarray(scores, dtype=np.float32).reshape(len(segments))

"""Lexical scorers: LEAD (document order) and BM25 (via bm25s)."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence

import bm25s
import numpy as np
import Stemmer

from ..document import Segment
from ..cache import CACHE_BYTES, LRUCache, segments_key

logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets its logger to DEBUG on import

# A spelled-out acronym, "U.K." or the AMI transcripts' "L_C_D_": bm25s keeps words of two or more
# characters, so its letters would vanish (or stay one odd token) and never meet a question's "UK" or "LCD".
_SPELLED_ACRONYM = re.compile(r"\b(?:[A-Z][._]){2,}")


def joined_acronyms(text: str) -> str:
    """`text` with each spelled-out acronym written as one word: "the U.K. and L_C_D_ screens" ->
    "the UK and LCD screens"."""
    return _SPELLED_ACRONYM.sub(lambda m: re.sub(r"[._]", "", m.group(0)), text)


class LeadScorer:
    """LEAD: earlier segments score higher; score_i = 1 - i / n."""

    def score(self, query: str, segments: Sequence[Segment]) -> np.ndarray:
        n = len(segments)
        return 1.0 - np.arange(n, dtype=np.float32) / max(n, 1)


def _index_nbytes(index: bm25s.BM25 | None) -> int:
    """About the memory of a BM25 index: its sparse score arrays and its vocabulary."""
    if index is None:
        return 0
    arrays = sum(v.nbytes for v in index.scores.values() if isinstance(v, np.ndarray))
    return arrays + sum(sys.getsizeof(t) + 8 for t in index.vocab_dict)


class BM25Scorer:
    """Okapi BM25 (Lucene variant, k1=1.5, b=0.75) over the segments of one document.

    Tokens are lower-cased, English stop words removed, Snowball-stemmed. The index of a
    document is built once and reused for all of its queries.
    """

    def __init__(self, k1: float = 1.5, b: float = 0.75, cache_size: int = 64) -> None:
        self.k1, self.b = k1, b
        self._stemmer = Stemmer.Stemmer("english")
        self._indexes: LRUCache[bm25s.BM25 | None] = LRUCache(cache_size, CACHE_BYTES, _index_nbytes)

    def _tokens(self, texts: list[str]) -> list[list[str]]:
        return bm25s.tokenize([joined_acronyms(t) for t in texts], stopwords="en", stemmer=self._stemmer,
                              return_ids=False, show_progress=False)

    def _index(self, segments: Sequence[Segment]) -> bm25s.BM25 | None:
        corpus = self._tokens([s.text for s in segments])
        if not any(corpus):
            return None  # nothing indexable (all stop words): every score is 0
        index = bm25s.BM25(k1=self.k1, b=self.b)
        index.index(corpus, show_progress=False)
        return index

    def score(self, query: str, segments: Sequence[Segment]) -> np.ndarray:
        index = self._indexes.get_or_make(segments_key(segments), lambda: self._index(segments))
        if index is None:
            return np.zeros(len(segments), dtype=np.float32)
        terms = [t for t in self._tokens([query])[0] if t in index.vocab_dict]
        if not terms:
            return np.zeros(len(segments), dtype=np.float32)
        return np.asarray(index.get_scores(terms), dtype=np.float32)

"""Scorers: LEAD, BM25 (against hand-computed Lucene BM25), RRF hybrid, dense with caching."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qfsum import QfsumError
from qfsum.document import Segment
from qfsum.retrieval import ScorerConfig, build_scorer, rank
from qfsum.cache import LRUCache, segments_key
from qfsum.retrieval.hybrid import HybridScorer
from qfsum.retrieval.lexical import BM25Scorer, LeadScorer


def _segments(texts: list[str]) -> list[Segment]:
    segments, offset = [], 0
    for i, text in enumerate(texts):
        segments.append(Segment(i, text, offset, offset + len(text)))
        offset += len(text) + 1
    return segments


# -- rank and LEAD ------------------------------------------------------------------------------


def test_rank_is_descending_and_stable_on_ties():
    assert rank(np.array([0.1, 0.5, 0.5, 0.9, 0.1])).tolist() == [3, 1, 2, 0, 4]


def test_lead_scores_follow_document_order():
    scores = LeadScorer().score("anything", _segments(["a", "b", "c", "d"]))
    assert scores.tolist() == pytest.approx([1.0, 0.75, 0.5, 0.25])
    assert rank(scores).tolist() == [0, 1, 2, 3]


# -- BM25 ---------------------------------------------------------------------------------------


def test_bm25_ranks_the_segment_with_the_query_terms_first():
    segments = _segments(
        [
            "The weather was sunny all week.",
            "Lunch was served at noon.",
            "The remote control will use a rubber case because rubber is cheap.",
            "Everyone agreed to meet again on Friday.",
        ]
    )
    scores = BM25Scorer().score("Why a rubber case?", segments)
    assert rank(scores)[0] == 2
    assert scores[2] > 0
    assert scores[[0, 1, 3]].tolist() == [0.0, 0.0, 0.0]


def test_bm25_reads_a_spelled_out_acronym_as_the_word_a_question_writes():
    # "U.K." lost both letters to bm25s's two-character words; the AMI transcripts spell "L_C_D_"
    from qfsum.retrieval.lexical import joined_acronyms

    segments = _segments(["Trade with the U.K. grew last year.", "The L_C_D_ screen costs more.", "Lunch was at noon."])
    assert rank(BM25Scorer().score("What about the UK?", segments))[0] == 0
    assert rank(BM25Scorer().score("Why an LCD?", segments))[0] == 1
    assert joined_acronyms("the U.S.A., e.g. A. Smith, L_C_D_") == "the USA, e.g. A. Smith, LCD"


def test_bm25_matches_hand_computed_lucene_values():
    # After stop words and stemming: d0 = budget budget meet (3 tokens), d1 = budget report deadlin (3),
    # d2 = weather forecast sunni warm (4). N = 3, avgdl = 10/3, k1 = 1.5, b = 0.75.
    segments = _segments(["budget budget meeting", "budget report deadline", "weather forecast sunny warm"])
    k1, b, avgdl = 1.5, 0.75, 10 / 3

    def tfc(tf: int, dl: int) -> float:
        return tf / (tf + k1 * (1 - b + b * dl / avgdl))

    idf_budget = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))  # df = 2
    idf_weather = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))  # df = 1
    scorer = BM25Scorer()
    scores = scorer.score("budget", segments)
    assert scores.tolist() == pytest.approx([idf_budget * tfc(2, 3), idf_budget * tfc(1, 3), 0.0], rel=1e-5)
    assert scores[0] == pytest.approx(0.47000363 * 2 / 3.3875, rel=1e-5)  # the same, as plain numbers
    scores = scorer.score("weather budget", segments)
    assert scores.tolist() == pytest.approx(
        [idf_budget * tfc(2, 3), idf_budget * tfc(1, 3), idf_weather * tfc(1, 4)], rel=1e-5
    )


def test_bm25_stemming_and_case():
    segments = _segments(["Meetings were held.", "Apples are red."])
    scores = BM25Scorer().score("MEETING", segments)
    assert scores[0] > 0 and scores[1] == 0


def test_bm25_unknown_or_stopword_queries_score_zero():
    segments = _segments(["budget budget meeting", "weather forecast"])
    scorer = BM25Scorer()
    assert scorer.score("zebra", segments).tolist() == [0.0, 0.0]
    assert scorer.score("the and of", segments).tolist() == [0.0, 0.0]
    assert scorer.score("budget", _segments(["the", "and of"])).tolist() == [0.0, 0.0]


def test_bm25_index_is_built_once_per_document(monkeypatch):
    scorer = BM25Scorer()
    built = []
    original = scorer._index
    monkeypatch.setattr(scorer, "_index", lambda segments: built.append(1) or original(segments))
    segments = _segments(["budget budget meeting", "budget report deadline"])
    for query in ["budget", "meeting", "deadline"]:
        scorer.score(query, segments)
    assert len(built) == 1
    scorer.score("budget", _segments(["another document", "budget here"]))
    assert len(built) == 2


def test_lru_cache_evicts_least_recently_used():
    cache: LRUCache[int] = LRUCache(capacity=2)
    made = []
    make = lambda value: (lambda: made.append(value) or value)  # noqa: E731
    cache.get_or_make("a", make(1))
    cache.get_or_make("b", make(2))
    cache.get_or_make("a", make(99))  # hit: "a" is now the most recent
    cache.get_or_make("c", make(3))  # evicts "b"
    assert cache.get_or_make("a", make(100)) == 1
    cache.get_or_make("b", make(4))
    assert made == [1, 2, 3, 4]


def test_segments_key_depends_on_text_and_offsets():
    a = _segments(["one", "two"])
    assert segments_key(a) == segments_key(_segments(["one", "two"]))
    assert segments_key(a) != segments_key(_segments(["one", "twO"]))
    shifted = [Segment(s.index, s.text, s.start + 1, s.end + 1) for s in a]
    assert segments_key(a) != segments_key(shifted)


# -- hybrid (RRF) ---------------------------------------------------------------------------------


class FixedScorer:
    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=np.float32)
        self.calls = 0

    def score(self, query, segments):
        self.calls += 1
        return self.scores


def test_hybrid_rrf_matches_hand_computed_values():
    segments = _segments(["a", "b", "c", "d"])
    first = FixedScorer([4, 3, 2, 1])  # ranks 1, 2, 3, 4
    second = FixedScorer([1, 4, 3, 2])  # ranks 4, 1, 2, 3
    fused = HybridScorer([first, second], k=60).score("q", segments)
    expected = [1 / 61 + 1 / 64, 1 / 62 + 1 / 61, 1 / 63 + 1 / 62, 1 / 64 + 1 / 63]
    assert fused.tolist() == pytest.approx(expected, rel=1e-6)
    assert rank(fused).tolist() == [1, 0, 2, 3]
    assert first.calls == 1 and second.calls == 1


def test_hybrid_rrf_k_and_ties_in_document_order():
    segments = _segments(["a", "b", "c"])
    tied = FixedScorer([1, 1, 0])  # tie: document order gives ranks 1, 2, 3
    other = FixedScorer([0, 5, 1])  # ranks 3, 1, 2
    fused = HybridScorer([tied, other], k=1).score("q", segments)
    assert fused.tolist() == pytest.approx([1 / 2 + 1 / 4, 1 / 3 + 1 / 2, 1 / 4 + 1 / 3], rel=1e-6)


# -- dense, with a stub encoder -----------------------------------------------------------------

_VOCAB = ["budget", "rubber", "voice", "library", "weather"]


class StubEncoder:
    """Bag-of-keywords vectors; records every encode() call."""

    device = torch.device("cpu")

    def __init__(self):
        self.calls: list[list[str]] = []

    def encode(self, texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False):
        self.calls.append(list(texts))
        vectors = np.array([[t.lower().count(w) for w in _VOCAB] + [0.1] for t in texts], dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture
def stub_encoder(monkeypatch):
    import qfsum.retrieval.dense as dense

    encoder = StubEncoder()
    requested = []
    monkeypatch.setattr(dense, "load_sentence_encoder", lambda name: requested.append(name) or encoder)
    encoder.requested = requested
    return encoder


def test_dense_scores_are_cosine_similarities(stub_encoder):
    from qfsum.retrieval.dense import DenseScorer

    scorer = DenseScorer("stub-model")
    segments = _segments(["budget budget", "rubber", "weather and budget"])
    scores = scorer.score("budget", segments)
    query = np.array([1, 0, 0, 0, 0, 0.1]) / math.sqrt(1.01)
    passages = [np.array(v, dtype=float) for v in ([2, 0, 0, 0, 0, 0.1], [0, 1, 0, 0, 0, 0.1], [1, 0, 0, 0, 1, 0.1])]
    expected = [float(query @ (p / np.linalg.norm(p))) for p in passages]
    assert scores.tolist() == pytest.approx(expected, rel=1e-5)
    assert rank(scores).tolist() == [0, 2, 1]
    assert stub_encoder.requested == ["stub-model"]


def test_dense_encodes_each_document_once_across_queries(stub_encoder):
    from qfsum.retrieval.dense import DenseScorer

    scorer = DenseScorer("stub-model")
    doc1 = _segments(["budget talk", "rubber case", "voice recognition"])
    doc2 = _segments(["library hours", "weather report"])
    for query in ["budget", "rubber", "voice"]:
        scorer.score(query, doc1)
    passage_calls = [c for c in stub_encoder.calls if len(c) > 1]
    assert passage_calls == [["budget talk", "rubber case", "voice recognition"]]
    assert [c for c in stub_encoder.calls if len(c) == 1] == [["budget"], ["rubber"], ["voice"]]
    scorer.score("library", doc2)
    scorer.score("weather", doc2)
    scorer.score("budget", doc1)  # still cached
    passage_calls = [c for c in stub_encoder.calls if len(c) > 1]
    assert passage_calls == [["budget talk", "rubber case", "voice recognition"], ["library hours", "weather report"]]


def test_dense_encodes_repeated_segment_texts_once(stub_encoder):
    from qfsum.retrieval.dense import DenseScorer

    scorer = DenseScorer("stub-model")
    doc = _segments(["Yeah .", "budget talk", "Yeah .", "rubber case", "budget talk"])
    scores = scorer.score("budget", doc)
    assert [c for c in stub_encoder.calls if len(c) > 1] == [["Yeah .", "budget talk", "rubber case"]]
    assert scores[0] == scores[2] and scores[1] == scores[4] and scores[1] > scores[3]


def test_build_scorer_kinds(stub_encoder):
    from qfsum.retrieval.dense import DenseScorer

    assert isinstance(build_scorer(ScorerConfig(kind="lead")), LeadScorer)
    assert isinstance(build_scorer(ScorerConfig(kind="bm25")), BM25Scorer)
    assert isinstance(build_scorer(ScorerConfig(kind="dense", model="m", batch_size=7)), DenseScorer)
    hybrid = build_scorer(ScorerConfig(kind="hybrid", model="m", rrf_k=5))
    assert isinstance(hybrid, HybridScorer) and hybrid.k == 5
    assert [type(s).__name__ for s in hybrid.scorers] == ["BM25Scorer", "DenseScorer"]


def test_build_scorer_unknown_kind():
    with pytest.raises(QfsumError, match="unknown scorer 'tfidf'"):
        build_scorer(ScorerConfig(kind="tfidf"))


# -- dense with the real packaged MiniLM ----------------------------------------------------------


@pytest.mark.slow
def test_dense_minilm_ranks_a_paraphrase_first():
    from qfsum.retrieval.dense import DenseScorer

    scorer = DenseScorer("minilm")
    segments = _segments(
        [
            "The weather in the mountains was cold and snowy.",
            "Our spending limit for the project is twelve euros per unit.",
            "The cat slept on the sofa all afternoon.",
        ]
    )
    scores = scorer.score("How much money can we spend?", segments)
    assert scores.shape == (3,)
    assert rank(scores)[0] == 1
    assert np.all(scores <= 1.0001) and np.all(scores >= -1.0001)
    again = scorer.score("How much money can we spend?", segments)
    assert again.tolist() == pytest.approx(scores.tolist(), abs=1e-6)

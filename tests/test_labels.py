"""Relevance labels: hand-computed ROUGE, agreement with rouge-score, data sets, the disk cache."""

from __future__ import annotations

import random

import numpy as np
import pytest
from rouge_score import rouge_scorer
from rouge_score.tokenizers import DefaultTokenizer

from qfsum import QfsumError
from qfsum.document import Document, Example
from qfsum.evaluation.rouge import rouge
from qfsum.readers import read_examples
from qfsum.training.extractor import labels as labels_module
from qfsum.training.extractor.labels import (
    RougeTokenizer,
    build_labels,
    labels_key,
    lcs_length,
    load_or_build_labels,
    segment_labels,
)
from qfsum.segment import Segmenter, SegmenterConfig

SEGMENTS = [
    "The cat sat on the mat.",
    "Project Manager: We decided to drop voice recognition because of the budget.",
    "Marketing: Young people want a fancy look and feel; the remote is fancy, fancy, fancy!",
    "...",  # no ROUGE tokens at all
    "",
    "Industrial Designer: the case will be made of rubber because rubber is cheap and soft, 12.50 euros.",
    "running runs ran runner: stemming matters for ROUGE (Porter), the the the the",
]
REFERENCES = [
    "The cat is on the mat.",
    "They dropped voice recognition because of the budget; the rubber case is cheap and soft.",
    "Young people want a fancy look. Runners were running.",
]


def _expected(text: str, references: list[str], metrics) -> float:
    """The label by definition: mean over metrics of qfsum's ROUGE F1 (max over references), / 100."""
    return float(np.mean(list(rouge(text, references, metrics).values()))) / 100


def test_hand_computed_rouge_of_one_pair():
    # "the cat sat on the mat" vs "the cat is on the mat" (no word over 3 letters: no stemming):
    # unigrams: the x2, cat, on, mat = 5 of 6 each side -> F1 5/6;
    # bigrams: "the cat", "on the", "the mat" = 3 of 5 each side -> F1 3/5;
    # LCS "the cat on the mat" = 5 -> F1 5/6.
    (label,) = segment_labels(["The cat sat on the mat."], ["The cat is on the mat."])
    assert label == pytest.approx((5 / 6 + 3 / 5 + 5 / 6) / 3, abs=1e-12)
    (r1,) = segment_labels(["The cat sat on the mat."], ["The cat is on the mat."], ["rouge1"])
    (r2,) = segment_labels(["The cat sat on the mat."], ["The cat is on the mat."], ["rouge2"])
    (rl,) = segment_labels(["The cat sat on the mat."], ["The cat is on the mat."], ["rougeL"])
    assert (r1, r2, rl) == pytest.approx((5 / 6, 3 / 5, 5 / 6), abs=1e-12)


def test_lcs_differs_from_unigram_overlap_when_order_differs():
    # Same words, reversed order: unigram F1 = 1, LCS = 1 word of 3 -> F1 1/3.
    assert segment_labels(["alpha beta gamma"], ["gamma beta alpha"], ["rouge1"])[0] == pytest.approx(1.0)
    assert segment_labels(["alpha beta gamma"], ["gamma beta alpha"], ["rougeL"])[0] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    "metrics",
    [("rouge1", "rouge2", "rougeL"), ("rouge1",), ("rouge2",), ("rougeL",), ("rouge3", "rougeL"), ("rouge1", "rouge4")],
)
def test_labels_equal_rouge_score_on_hand_made_pairs(metrics):
    for references in ([REFERENCES[0]], [REFERENCES[1]], REFERENCES):
        got = segment_labels(SEGMENTS, references, metrics)
        want = [_expected(text, references, metrics) for text in SEGMENTS]
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
        assert got[3] == 0 and got[4] == 0  # no tokens, no overlap


def test_labels_equal_rouge_score_on_random_texts():
    rng = random.Random(7)
    words = "the budget budgets remote control rubber case cheap cheaper voice recognition a of to 12 euros".split()
    texts = [" ".join(rng.choice(words) for _ in range(rng.randrange(0, 40))) for _ in range(60)]
    references = [" ".join(rng.choice(words) for _ in range(rng.randrange(1, 50))) for _ in range(2)]
    got = segment_labels(texts, references)
    want = [_expected(text, references, ("rouge1", "rouge2", "rougeL")) for text in texts]
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


def test_tokenizer_matches_rouge_score():
    ours, theirs = RougeTokenizer(), DefaultTokenizer(use_stemmer=True)
    for text in SEGMENTS + REFERENCES + ["Café naïve  {vocalsound} ÉCOLE x-ray 3.14 don't", "\n\tUPPER lower\n"]:
        assert ours.tokenize(text) == theirs.tokenize(text)


def test_bit_parallel_lcs_equals_the_dynamic_programming_table():
    rng = random.Random(0)
    for _ in range(500):
        a = [rng.randrange(6) for _ in range(rng.randrange(0, 40))]
        b = [rng.randrange(6) for _ in range(rng.randrange(0, 40))]
        table = rouge_scorer._lcs_table(a, b)
        assert lcs_length(a, b) == (table[-1][-1] if a and b else 0)
    assert lcs_length(list(range(200)), list(range(200))) == 200  # longer than a machine word


@pytest.mark.parametrize("metrics, message", [((), "at least one"), (("rougeLsum",), "unknown label metric"),
                                              (("rouge0",), "unknown label metric"), (("bleu",), "unknown")])
def test_bad_metrics(metrics, message):
    with pytest.raises(QfsumError, match=message):
        segment_labels(["a"], ["a"], metrics)


def test_labels_need_a_reference():
    with pytest.raises(QfsumError, match="reference"):
        segment_labels(["a"], [])


# -- whole data sets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("segmenter", [SegmenterConfig("turn"), SegmenterConfig("window", size=12),
                                       SegmenterConfig("sentence")])
def test_build_labels_on_qmsum_agrees_with_rouge(qmsum_root, segmenter):
    examples = read_examples(qmsum_root, "val")
    labels = build_labels(examples, segmenter, workers=1, progress=False)
    assert list(labels) == [e.id for e in examples]
    for example in examples:
        segments = Segmenter(segmenter)(example.document)
        assert labels[example.id].dtype == np.float32 and len(labels[example.id]) == len(segments)
        want = [_expected(s.text, example.references, ("rouge1", "rouge2", "rougeL")) for s in segments]
        np.testing.assert_allclose(labels[example.id], want, atol=1e-6, rtol=0)
    # the turn that answers "voice recognition" is the best one for that query
    if segmenter.kind == "turn":
        assert int(np.argmax(labels["meeting_b-s0"])) == 5  # turn 6 of the meeting; turn 1 (markup only) is skipped


def test_build_labels_in_worker_processes_equals_in_process(qmsum_root):
    examples = read_examples(qmsum_root, "val") + read_examples(qmsum_root, "test")
    one = build_labels(examples, SegmenterConfig("turn"), workers=1, progress=False)
    two = build_labels(examples, SegmenterConfig("turn"), workers=2, progress=False)
    assert list(one) == list(two)
    for key in one:
        np.testing.assert_array_equal(one[key], two[key])


def test_duplicate_ids_and_missing_references_are_user_errors():
    document = Document.from_units([("A", "hello there"), ("B", "general kenobi")])
    with pytest.raises(QfsumError, match="appears twice"):
        build_labels([Example("x", document, "q", ["hello"]), Example("x", document, "q2", ["hi"])], SegmenterConfig())
    with pytest.raises(QfsumError, match="no reference summary"):
        build_labels([Example("y", document, "q", [])], SegmenterConfig())


def test_labels_are_cached_on_disk(qmsum_root, tmp_path, monkeypatch):
    examples = read_examples(qmsum_root, "val")
    first = load_or_build_labels(examples, SegmenterConfig("turn"), workers=1, progress=False, directory=tmp_path)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1 and files[0].stem == labels_key(examples, SegmenterConfig("turn"), labels_module.LABEL_METRICS)

    def no_building(*args, **kwargs):
        raise AssertionError("labels were rebuilt instead of read from the cache")

    monkeypatch.setattr(labels_module, "build_labels", no_building)
    again = load_or_build_labels(examples, SegmenterConfig("turn"), progress=False, directory=tmp_path)
    assert list(again) == list(first)
    for key in first:
        np.testing.assert_array_equal(again[key], first[key])
    monkeypatch.undo()

    # another segmenter, other metrics or other data: other cache files
    load_or_build_labels(examples, SegmenterConfig("window", size=16), workers=1, progress=False, directory=tmp_path)
    load_or_build_labels(examples, SegmenterConfig("turn"), ("rouge1",), workers=1, progress=False, directory=tmp_path)
    load_or_build_labels(examples[:2], SegmenterConfig("turn"), workers=1, progress=False, directory=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 4


def test_a_torn_cache_file_is_rebuilt(qmsum_root, tmp_path):
    examples = read_examples(qmsum_root, "val")
    path = tmp_path / f"{labels_key(examples, SegmenterConfig(), labels_module.LABEL_METRICS)}.npz"
    path.write_bytes(b"PK\x03\x04 torn")
    labels = load_or_build_labels(examples, SegmenterConfig(), workers=1, progress=False, directory=tmp_path)
    assert set(labels) == {e.id for e in examples}
    assert np.load(path)["labels"].size == sum(len(v) for v in labels.values())


def test_cache_goes_under_qfsum_cache(qmsum_root, tmp_path, monkeypatch):
    monkeypatch.setenv("QFSUM_CACHE", str(tmp_path))
    load_or_build_labels(read_examples(qmsum_root, "val"), SegmenterConfig(), workers=1, progress=False)
    assert len(list((tmp_path / "labels").glob("*.npz"))) == 1


def test_labelling_is_fast_enough_for_qmsum_train():
    # QMSum train is ~600K (query, turn) pairs: per-pair rouge-score would take hours. Here 40K pairs
    # (2,000 turns x 20 queries) must take well under the ~40 s rouge-score needs; ~0.5 s is typical.
    import time

    rng = random.Random(0)
    words = [f"w{i}" for i in range(3000)] + ["the", "a", "of", "budget", "meeting"] * 200
    turns = [" ".join(rng.choice(words) for _ in range(rng.randrange(1, 60))) for _ in range(2000)]
    references = [" ".join(rng.choice(words) for _ in range(80)) for _ in range(20)]
    start = time.perf_counter()
    labeler = labels_module.DocumentLabeler(turns)
    values = [labeler.labels([reference]) for reference in references]
    assert time.perf_counter() - start < 10
    i = int(np.argmax(values[0]))
    assert values[0][i] == pytest.approx(_expected(turns[i], [references[0]], labels_module.LABEL_METRICS), abs=1e-6)

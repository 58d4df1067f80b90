"""Segmenters: turn, sentence, window; every segment is an exact span of the document text."""

from __future__ import annotations

import pytest
from conftest import MEETING_B

from qfsum import QfsumError
from qfsum.document import Document, Segment
from qfsum.readers import document_from_text, qmsum_document
from qfsum.segment import Segmenter, SegmenterConfig, has_content, window_segments


def _words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def _assert_round_trip(document: Document, segments: list[Segment]) -> None:
    assert segments, "a non-empty document has segments"
    for i, segment in enumerate(segments):
        assert segment.index == i
        assert document.text[segment.start : segment.end] == segment.text
        assert segment.text.strip()


# -- turn ---------------------------------------------------------------------------------------


def test_turn_segments_are_paragraphs_of_plain_text():
    document = document_from_text("First para.\n\nSecond para.\n\n\nThird.")
    segments = Segmenter(SegmenterConfig(kind="turn"))(document)
    assert [s.text for s in segments] == ["First para.", "Second para.", "Third."]
    _assert_round_trip(document, segments)


def test_turn_segments_skip_content_free_turns_and_renumber():
    document = qmsum_document(MEETING_B, "b")
    segments = Segmenter()(document)  # default kind is turn
    assert len(document.units) == 7 and len(segments) == 6
    assert [s.start for s in segments] == [u.start for i, u in enumerate(document.units) if i != 1]
    assert segments[1].speaker == "Industrial Designer"
    _assert_round_trip(document, segments)


def test_turn_segments_fall_back_to_paragraphs_without_units():
    document = Document("alpha\n\nbeta")
    assert [s.text for s in Segmenter()(document)] == ["alpha", "beta"]


def test_has_content():
    assert not has_content(Segment(0, "Marketing: ", 0, 11, "Marketing"))
    assert not has_content(Segment(0, "", 0, 0, None))
    assert has_content(Segment(0, "Marketing: yes", 0, 14, "Marketing"))
    assert has_content(Segment(0, "plain text", 0, 10, None))


# -- sentence -----------------------------------------------------------------------------------


def test_sentence_segments_stay_inside_turns_and_keep_speakers():
    document = Document.from_units(
        [("Ann", "We met Dr. Smith. He agreed."), ("Ben", "Fine. Growth was 3.5 percent")]
    )
    segments = Segmenter(SegmenterConfig(kind="sentence"))(document)
    assert [s.text for s in segments] == ["Ann: We met Dr. Smith.", "He agreed.", "Ben: Fine.", "Growth was 3.5 percent"]
    assert [s.speaker for s in segments] == ["Ann", "Ann", "Ben", "Ben"]
    _assert_round_trip(document, segments)


def test_sentence_segments_of_qmsum_meeting():
    document = qmsum_document(MEETING_B, "b")
    segments = Segmenter(SegmenterConfig(kind="sentence"))(document)
    assert segments[0].text == "Project Manager: Okay let's start."
    assert segments[1].text == "Today we discuss the remote control design and the budget."
    _assert_round_trip(document, segments)


# -- window -------------------------------------------------------------------------------------


def test_window_default_stride_is_half_the_size():
    document = document_from_text(_words(10))
    segments = Segmenter(SegmenterConfig(kind="window", size=4))(document)
    assert [s.text for s in segments] == ["w0 w1 w2 w3", "w2 w3 w4 w5", "w4 w5 w6 w7", "w6 w7 w8 w9"]
    _assert_round_trip(document, segments)


def test_window_explicit_stride_and_short_last_window():
    document = document_from_text(_words(10))
    segments = Segmenter(SegmenterConfig(kind="window", size=4, stride=3))(document)
    assert [s.text for s in segments] == ["w0 w1 w2 w3", "w3 w4 w5 w6", "w6 w7 w8 w9"]
    segments = Segmenter(SegmenterConfig(kind="window", size=4, stride=4))(document)
    assert [s.text for s in segments] == ["w0 w1 w2 w3", "w4 w5 w6 w7", "w8 w9"]


def test_window_larger_than_document_is_one_window():
    document = document_from_text("just  three\nwords")
    segments = Segmenter(SegmenterConfig(kind="window", size=256))(document)
    assert [(s.start, s.end, s.text) for s in segments] == [(0, 17, "just  three\nwords")]


def test_window_size_one():
    document = document_from_text("a b c")
    assert [s.text for s in Segmenter(SegmenterConfig(kind="window", size=1))(document)] == ["a", "b", "c"]


def test_window_with_hf_tokenizer_counts_tokens(tiny_causal_dir):
    document = document_from_text("Unbelievably, the councillors reconsidered everything. " * 3)
    segmenter = Segmenter(SegmenterConfig(kind="window", size=6, stride=3, tokenizer=str(tiny_causal_dir)))
    segments = segmenter(document)
    _assert_round_trip(document, segments)
    words = Segmenter(SegmenterConfig(kind="window", size=6, stride=3))(document)
    assert len(segments) > len(words)  # word pieces: more tokens, so more windows
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_dir)
    first = tokenizer(segments[0].text, add_special_tokens=False)["input_ids"]
    assert len(first) == 6


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "paragraph"}, "unknown segmenter"),
        ({"kind": "window", "size": 0}, "window size"),
        ({"kind": "window", "size": 4, "stride": 5}, "stride"),
        ({"kind": "window", "size": 4, "stride": 0}, "stride"),
    ],
)
def test_segmenter_config_validation(kwargs, message):
    with pytest.raises(QfsumError, match=message):
        SegmenterConfig(**kwargs)


@pytest.mark.parametrize("kind", ["turn", "sentence"])
def test_content_free_document_is_an_error(kind):
    document = Document.from_units([("A", ""), ("B", "  ")], id="silent")
    with pytest.raises(QfsumError, match="silent: the document has no text"):
        Segmenter(SegmenterConfig(kind=kind))(document)


def test_window_of_blank_text_is_an_error():
    with pytest.raises(QfsumError, match="blank: the document has no text"):
        Segmenter(SegmenterConfig(kind="window"))(Document(" \n\t ", id="blank"))


@pytest.mark.parametrize("blank", ["\r\n", "\u00a0", "Ann: \r"])
def test_whitespace_only_units_are_not_content(blank):
    speaker = "Ann" if blank.startswith("Ann") else None
    unit = Segment(0, blank, 0, len(blank), speaker)
    assert not has_content(unit)


def test_window_segments_function_with_custom_token_spans():
    document = Document("abcdef")
    chars = lambda text: [(i, i + 1) for i in range(len(text))]  # noqa: E731
    segments = window_segments(document, 4, 2, chars)
    assert [s.text for s in segments] == ["abcd", "cdef"]


# -- the data model -------------------------------------------------------------------------------


def test_document_from_units_offsets_and_fingerprint():
    document = Document.from_units([("Ann", "Hello."), (None, "Plain line."), ("Bob", "")], id="d")
    assert document.text == "Ann: Hello.\nPlain line.\nBob: "
    assert [(u.start, u.end, u.speaker) for u in document.units] == [(0, 11, "Ann"), (12, 23, None), (24, 29, "Bob")]
    assert document.fingerprint == Document(document.text).fingerprint
    assert document.fingerprint != Document(document.text + " ").fingerprint
    assert len(document.fingerprint) == 40

"""Property-based tests (hypothesis): sentence spans, the segment round trip, budget selection.

hypothesis is in the `test` extra; without it this module is skipped. conftest.py derandomizes it.
"""

from __future__ import annotations

import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_budget import WORDS, _doc_evidence, _ranked, _used, truncate_ranked  # noqa: E402
from test_segment import _assert_round_trip  # noqa: E402

from qfsum import QfsumError  # noqa: E402
from qfsum.budget import select_under_budget  # noqa: E402
from qfsum.document import Document  # noqa: E402
from qfsum.readers import document_from_text  # noqa: E402
from qfsum.segment import Segmenter, SegmenterConfig, has_content  # noqa: E402
from qfsum.text import sentence_spans, word_spans  # noqa: E402

# -- sentences -------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(alphabet=st.sampled_from(list("ab .!?\n\"')(DrJ3.5 ")), max_size=80))
def test_sentence_spans_are_ordered_trimmed_and_cover_all_words(text):
    spans = list(sentence_spans(text))
    previous_end = 0
    for a, b in spans:
        assert previous_end <= a < b <= len(text)
        piece = text[a:b]
        assert piece == piece.strip() and piece
        previous_end = b
    # no word is lost: the sentences hold exactly the text's words
    assert " ".join(text[a:b] for a, b in spans).split() == text.split()


# -- the round trip holds for every segmenter on any text ------------------------------------------

_ALPHABET = list("ab Z.!?\n\n\t ,'\"()3é中") + ["Dr. ", "e.g. ", "  ", "\n\n", "\r\n", "{gap}"]
# '\r' is left out of turns: see test_segment.py::test_whitespace_only_units_are_not_content
_UNIT_ALPHABET = [c for c in _ALPHABET if "\r" not in c]


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.lists(st.sampled_from(_ALPHABET), min_size=1, max_size=60).map("".join).filter(str.strip),
    kind=st.sampled_from(["turn", "sentence", "window"]),
    size=st.integers(1, 9),
    stride=st.one_of(st.none(), st.integers(1, 9)),
)
def test_round_trip_property_plain_text(text, kind, size, stride):
    stride = None if stride is None else min(stride, size)
    document = document_from_text(text)
    segments = Segmenter(SegmenterConfig(kind=kind, size=size, stride=stride))(document)
    _assert_round_trip(document, segments)
    assert [s.start for s in segments] == sorted(s.start for s in segments)
    if kind == "window":
        # windows cover every word and the last one ends at the last word
        spans = word_spans(text)
        covered = {i for s in segments for i, (a, b) in enumerate(spans) if s.start <= a and b <= s.end}
        assert covered == set(range(len(spans)))
        assert segments[-1].end == spans[-1][1]
        step = stride or max(size // 2, 1)
        starts = [a for a, _ in spans]
        assert [s.start for s in segments] == [starts[i] for i in range(0, len(spans), step)][: len(segments)]
    else:
        # turns and sentences never overlap
        for left, right in zip(segments, segments[1:]):
            assert left.end <= right.start


@settings(max_examples=75, deadline=None, database=None)
@given(
    turns=st.lists(
        st.tuples(
            st.one_of(st.none(), st.sampled_from(["Ann", "Project Manager"])),
            st.lists(st.sampled_from(_UNIT_ALPHABET), max_size=20).map("".join),
        ),
        min_size=1,
        max_size=6,
    ).filter(lambda ts: any(t.strip(" :\t\n") for _, t in ts)),
    kind=st.sampled_from(["turn", "sentence", "window"]),
)
def test_round_trip_property_units(turns, kind):
    document = Document.from_units(turns)
    segments = Segmenter(SegmenterConfig(kind=kind, size=3))(document)
    _assert_round_trip(document, segments)
    if kind == "turn":
        assert len(segments) == sum(has_content(u) for u in document.units)


def test_content_free_turns_raise():
    with pytest.raises(QfsumError):
        Segmenter(SegmenterConfig(kind="turn"))(Document.from_units([("Ann", " "), ("Bob", "")]))


# -- budget selection --------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, database=None)
@given(
    sizes=st.lists(st.integers(1, 12), min_size=1, max_size=12),
    budget=st.integers(1, 40),
    data=st.data(),
)
def test_select_property(sizes, budget, data):
    items = _doc_evidence(sizes)
    order = data.draw(st.permutations(list(range(len(sizes)))))
    chosen = select_under_budget(_ranked(items, order), budget, WORDS)
    assert chosen, "never empty for a non-empty document"
    assert _used(chosen) <= budget
    starts = [e.segment.start for e in chosen]
    assert starts == sorted(starts)
    if sizes[order[0]] > budget:
        # nothing fits whole: the best segment, cut to the budget
        assert len(chosen) == 1 and _used(chosen) == budget and chosen[0].segment.index == order[0]
    else:
        # whole segments only, the best ones in rank order
        taken = {e.segment.index for e in chosen}
        assert all(e.segment.text == items[e.segment.index].segment.text for e in chosen)
        assert taken == set(order[: len(taken)])


@settings(max_examples=200, deadline=None, database=None)
@given(sizes=st.lists(st.integers(1, 10), min_size=1, max_size=10), budget=st.integers(1, 60))
def test_truncate_ranked_property(sizes, budget):
    items = _doc_evidence(sizes)
    chosen = truncate_ranked(list(reversed(items)), budget, WORDS)
    assert _used(chosen) == min(budget, sum(sizes))  # exactly the budget when there is enough text
    starts = [e.segment.start for e in chosen]
    assert starts == sorted(starts)

"""Budgets: counting, cutting, and choosing ranked evidence that fits."""

from __future__ import annotations

import pytest
from qfsum.budget import TokenizerCounter, WordCounter, select_under_budget
from qfsum.document import Segment
from qfsum.document import Evidence

WORDS = WordCounter()


def truncate_ranked(ranked, budget, counter):
    """The "all segments ranked, then truncated" selection (extractor evaluation, generative writer)."""
    return select_under_budget(ranked, budget, counter, cut_last=True)


def _doc_evidence(word_counts: list[int], scores: list[float] | None = None) -> list[Evidence]:
    """Segments of n words each, laid out in document order; evidence in the given score order."""
    items, offset = [], 0
    for i, n in enumerate(word_counts):
        text = " ".join(f"s{i}w{j}" for j in range(n))
        items.append(Evidence(Segment(i, text, offset, offset + len(text)), 1.0 if scores is None else scores[i]))
        offset += len(text) + 2
    return items


def _ranked(items: list[Evidence], order: list[int]) -> list[Evidence]:
    return [items[i] for i in order]


def _used(chosen: list[Evidence]) -> int:
    return sum(WORDS.count(e.segment.text) for e in chosen)


# -- WordCounter -----------------------------------------------------------------------------------


def test_word_counter_counts_and_truncates_keeping_spacing():
    assert WORDS.count(" one  two\nthree ") == 3
    assert WORDS.truncate("one  two\nthree four", 3) == "one  two\nthree"
    assert WORDS.truncate("one two", 5) == "one two"
    assert WORDS.truncate("one two", 0) == ""


# -- select_under_budget ---------------------------------------------------------------------------


def test_select_takes_in_rank_order_and_returns_document_order():
    items = _doc_evidence([3, 4, 5, 2])
    chosen = select_under_budget(_ranked(items, [2, 0, 3, 1]), 10, WORDS)
    assert [e.segment.index for e in chosen] == [0, 2, 3]  # 5 + 3 + 2 = 10 words, the budget
    assert _used(chosen) == 10


def test_select_leaves_out_the_segment_that_does_not_fit():
    items = _doc_evidence([6, 8, 2, 1])
    chosen = select_under_budget(_ranked(items, [0, 1, 2, 3]), 9, WORDS)
    # segment 1 (8 words) does not fit after segment 0 and is not cut; selection stops there
    assert [e.segment.index for e in chosen] == [0]
    assert all(e.segment.text == items[e.segment.index].segment.text for e in chosen)


def test_select_truncates_the_best_segment_when_nothing_fits():
    items = _doc_evidence([20, 30])
    chosen = select_under_budget(_ranked(items, [1, 0]), 7, WORDS)
    assert len(chosen) == 1
    cut = chosen[0].segment
    assert cut.index == 1 and cut.start == items[1].segment.start
    assert cut.text == " ".join(f"s1w{j}" for j in range(7))
    assert cut.end == cut.start + len(cut.text)
    assert chosen[0].score == items[1].score


def test_select_excludes_minus_infinity():
    items = _doc_evidence([2, 2], scores=[float("-inf"), 0.5])
    assert [e.segment.index for e in select_under_budget(_ranked(items, [1, 0]), 10, WORDS)] == [1]
    assert select_under_budget(_doc_evidence([2], scores=[float("-inf")]), 10, WORDS) == []


# -- truncate_ranked -------------------------------------------------------------------------------


def test_truncate_ranked_cuts_exactly_at_the_budget():
    items = _doc_evidence([5, 5, 5])
    chosen = truncate_ranked(_ranked(items, [2, 0, 1]), 12, WORDS)
    assert [e.segment.index for e in chosen] == [0, 1, 2]  # document order
    assert _used(chosen) == 12
    assert chosen[1].segment.text == "s1w0 s1w1"  # the last one in rank order is cut
    assert chosen[0].segment.text == items[0].segment.text


def test_truncate_ranked_stops_at_minus_infinity_and_when_full():
    items = _doc_evidence([3, 3, 3], scores=[1.0, float("-inf"), 0.5])
    chosen = truncate_ranked(_ranked(items, [0, 1, 2]), 100, WORDS)
    assert [e.segment.index for e in chosen] == [0]
    assert [e.segment.index for e in truncate_ranked(_ranked(_doc_evidence([3, 3]), [1, 0]), 3, WORDS)] == [1]


# -- TokenizerCounter --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def byte_tokenizer(tiny_bytes_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bytes_dir)


def test_tokenizer_counter_counts_the_joining_newline(byte_tokenizer):
    counter = TokenizerCounter(byte_tokenizer)
    assert counter.count("abc") == 4  # one token per byte, plus "\n"
    assert counter.count("") == 1


@pytest.mark.parametrize("budget", range(2, 12))
def test_tokenizer_counter_truncates_ascii_exactly(byte_tokenizer, budget):
    counter = TokenizerCounter(byte_tokenizer)
    cut = counter.truncate("the budget was approved by everyone", budget)
    assert counter.count(cut) == budget
    assert "the budget was approved by everyone".startswith(cut)


def test_tokenizer_counter_truncate_never_exceeds_budget_on_multibyte_text(byte_tokenizer):
    counter = TokenizerCounter(byte_tokenizer)
    text = "会议决定削减预算并推迟发布日期。" * 5
    over = {b: counter.count(counter.truncate(text, b)) for b in range(2, 30) if counter.count(counter.truncate(text, b)) > b}
    assert over == {}


def test_truncate_ranked_with_tokens_is_exact_on_ascii(byte_tokenizer):
    counter = TokenizerCounter(byte_tokenizer)
    items = _doc_evidence([4, 4, 4])
    chosen = truncate_ranked(items, 50, counter)
    assert sum(counter.count(e.segment.text) for e in chosen) == 50


# -- overlapping windows ---------------------------------------------------------------------------


def _windows(doc: str, size: int, stride: int) -> list[Evidence]:
    """Word windows of `size` words every `stride` words, with exact document offsets."""
    from qfsum.text import word_spans

    spans = word_spans(doc)
    starts = range(0, max(len(spans) - size, 0) + 1, stride)
    return [Evidence(Segment(i, doc[spans[s][0] : spans[min(s + size, len(spans)) - 1][1]],
                             spans[s][0], spans[min(s + size, len(spans)) - 1][1]), 1.0)
            for i, s in enumerate(starts)]


DOC = " ".join(f"w{i}" for i in range(40))


def test_overlapping_windows_pay_only_for_new_words_and_come_out_joined():
    windows = _windows(DOC, 10, 5)  # w0-w9, w5-w14, w10-w19, ...
    chosen = select_under_budget([windows[1], windows[2]], 15, WORDS)
    # w5-w14 (10 words) then only w15-w19 (5 new words) fit in 15, shown as one span
    assert len(chosen) == 1
    assert chosen[0].segment.text == DOC[chosen[0].segment.start : chosen[0].segment.end]
    assert chosen[0].segment.text.split() == [f"w{i}" for i in range(5, 20)]


def test_a_window_inside_the_taken_text_costs_nothing():
    windows = _windows(DOC, 10, 5)
    chosen = select_under_budget([windows[0], windows[2], windows[1], windows[4]], 30, WORDS)
    # w0-w9, w10-w19, then w5-w14 is covered (free) and bridges them; w20-w29 stands apart
    assert [(e.segment.text.split()[0], e.segment.text.split()[-1]) for e in chosen] == [("w0", "w19"), ("w20", "w29")]
    assert _used(chosen) == 30


def test_cut_window_fills_the_budget_exactly_without_repeating_words():
    windows = _windows(DOC, 10, 5)
    chosen = truncate_ranked([windows[3], windows[2], windows[0]], 17, WORDS)
    words = [w for e in chosen for w in e.segment.text.split()]
    assert len(words) == len(set(words)) == 17
    assert words[:2] == ["w0", "w1"]  # w0-w1 cut from the third window, then w10-w24 joined

"""The rule-based sentence splitter and word helpers."""

from __future__ import annotations

import pytest
from qfsum.text import complete_sentences, count_words, sentence_spans, split_sentences, word_spans


def test_splits_simple_sentences():
    assert split_sentences("The cat sat. The dog ran! Did it? Yes.") == [
        "The cat sat.",
        "The dog ran!",
        "Did it?",
        "Yes.",
    ]


def test_title_abbreviation_is_not_a_boundary():
    assert split_sentences("We met Dr. Smith today. He was late.") == ["We met Dr. Smith today.", "He was late."]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Mr. and Mrs. Jones came. They left.", ["Mr. and Mrs. Jones came.", "They left."]),
        ("Fruit, e.g. Apples, is healthy. Eat it.", ["Fruit, e.g. Apples, is healthy.", "Eat it."]),
        ("The U.S. Army arrived. Then rain.", ["The U.S. Army arrived.", "Then rain."]),
        ("Ask J. Doe about it. He knows.", ["Ask J. Doe about it.", "He knows."]),
        ("Prof. Lee spoke at 9 a.m. Sharp. No questions.", ["Prof. Lee spoke at 9 a.m. Sharp.", "No questions."]),
    ],
)
def test_known_abbreviations(text, expected):
    assert split_sentences(text) == expected


def test_decimals_do_not_split():
    text = "Growth was 3.5 percent this year. It cost 2.50 dollars. Then 10. Next item."
    assert split_sentences(text) == [
        "Growth was 3.5 percent this year.",
        "It cost 2.50 dollars.",
        "Then 10.",
        "Next item.",
    ]


def test_lowercase_after_period_is_not_a_boundary():
    assert split_sentences("It ended. then we went home.") == ["It ended. then we went home."]


def test_closing_quotes_and_brackets_stay_with_their_sentence():
    text = 'He said "stop." Then he left. (It was late.) Everyone agreed.'
    assert split_sentences(text) == ['He said "stop."', "Then he left.", "(It was late.)", "Everyone agreed."]


def test_spans_are_trimmed_offsets_into_the_text():
    text = "  First one.   Second one!\n\nThird one?  "
    spans = list(sentence_spans(text))
    assert [text[a:b] for a, b in spans] == ["First one.", "Second one!", "Third one?"]
    assert spans[0] == (2, 12)


def test_empty_and_blank_text_have_no_sentences():
    assert split_sentences("") == []
    assert split_sentences("   \n\t ") == []


def test_sentence_final_no_is_a_boundary():
    assert split_sentences("Do we agree? No. That is wrong.") == ["Do we agree?", "No.", "That is wrong."]


def test_word_helpers():
    text = " alpha  beta\tgamma\n"
    assert word_spans(text) == [(1, 6), (8, 12), (13, 18)]
    assert count_words(text) == 3


def test_any_case_splits_lowercased_and_tokenized_text():
    assert split_sentences("the cat sat. the dog ran!", any_case=True) == ["the cat sat.", "the dog ran!"]
    assert split_sentences("we agreed . then we left .", any_case=True) == ["we agreed .", "then we left ."]
    assert split_sentences("the cat sat. the dog ran!") == ["the cat sat. the dog ran!"]  # the default needs a capital


def test_any_case_keeps_abbreviations_whole():
    assert split_sentences("we met dr. smith today. he was late.", any_case=True) == [
        "we met dr. smith today.",
        "he was late.",
    ]


@pytest.mark.parametrize("text, expected", [
    ("The roof is late. The beams were ordered on", "The roof is late."),
    ("The roof is late. The beams were ordered.", "The roof is late. The beams were ordered."),
    ('He said "stop." Then he', 'He said "stop."'),
    ("no sentence ends here", "no sentence ends here"),  # nothing whole to keep: keep it all
    ("The criteria were:\n\n12 Euro fifty,\nand the cost of a remote is 1", "The criteria were:\n\n12 Euro fifty"),
    ("It rose to 19 dollars a year, which is 1", "It rose to 19 dollars a year"),  # never ends inside a number
    (", and then 1", ", and then 1"),  # no clause before the mark: keep it all
    ("", ""),
])
def test_complete_sentences_drops_a_last_sentence_cut_short(text, expected):
    assert complete_sentences(text) == expected

"""Numbers, names and sentence support: the offline faithfulness checks."""

from __future__ import annotations

import pytest

from qfsum.evaluation.faithfulness import faithfulness, mean_defined
from qfsum.grounding import cite, names, numbers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The overrun was 1.3 million.", ["1300000"]),
        ("It cost 1,300,000 pounds.", ["1300000"]),
        ("Exactly 1300000.", ["1300000"]),
        ("fifty people came", ["50"]),
        ("twenty-five left", ["25"]),
        ("two hundred and ten chairs", ["210"]),
        ("3 million and two million", ["3000000", "2000000"]),
        ("2.5% of the budget", ["2.5%"]),
        ("2.5 percent of it", ["2.5%"]),
        ("fifty per cent", ["50%"]),
        ("twenty five% and fifty %", ["25%", "50%"]),  # a sign after number words, as after digits
        ("no one came, one of them left", []),  # a lone "one" is a pronoun, not a figure
        ("one million, then one percent", ["1000000", "1%"]),
        ("a 4.5k grant", ["4500"]),
        ("on 14 March", ["date:03-14"]),
        ("on the 14th of March", ["date:03-14"]),
        ("by March 14th, 2024", ["date:03-14", "2024"]),
        ("in July twenty - fifth", ["date:07-25"]),  # an ordinal day in words, spaced as in the transcripts
        ("on the twenty-first of May, 2024", ["date:05-21", "2024"]),
        ("March the first", ["date:03-01"]),
        ("we may first check, then march second", []),  # lower-case "may", "march": verbs, not months
        ("twenty people in June", ["20"]),
        ("no figures here", []),
    ],
)
def test_numbers_are_normalised(text, expected):
    assert numbers(text) == expected


def test_the_same_value_written_differently_matches():
    assert set(numbers("one point: 1.3 million")) >= set(numbers("1,300,000"))


def test_names_leave_out_sentence_initial_words_unless_capitalised_elsewhere():
    text = "The Council met Anna Smith in Leeds. Anna said the BBC was late. Overall it was fine."
    assert names(text) == ["council", "anna", "smith", "leeds", "anna", "bbc"]


def test_cite_points_each_sentence_at_the_segment_with_its_words():
    evidence = ["Ann: the overrun is 120,000 pounds on the roof.", "Bob: we should apply to the heritage fund."]
    first, second, third = cite("The overrun is 120,000. They will apply to the heritage fund. The cat sat.", evidence)
    assert (first.citations, second.citations) == ([0], [1])
    assert first.support == 1.0 and second.support == 1.0 and third.support == 0.0
    assert "The cat sat." == "The overrun is 120,000. They will apply to the heritage fund. The cat sat."[third.start:third.end]


def test_an_invented_number_lowers_support_and_number_precision():
    evidence = ["Ann: the overrun is 120,000 pounds on the roof."]
    right = faithfulness("The overrun is 120,000 pounds.", evidence, evidence[0])
    wrong = faithfulness("The overrun is 1.3 million pounds.", evidence, evidence[0])
    assert right["number_precision"] == 1.0 and wrong["number_precision"] == 0.0
    assert right["supported_sentences"] == 1.0 and wrong["supported_sentences"] == 0.0
    assert faithfulness("No figures here.", evidence, evidence[0])["number_precision"] is None


def test_means_skip_undefined_rows():
    rows = [{"number_precision": 1.0}, {"number_precision": None}, {"number_precision": 0.0}]
    metrics = mean_defined(rows, ["number_precision"])
    assert metrics == {"number_precision": 0.5, "n_number_precision": 2}

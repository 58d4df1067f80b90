"""The extractive writer leaves out filler turns ("Wow .", "Huh ? A cat .") that would fill its budget."""

from __future__ import annotations

import pytest

from qfsum import Pipeline, QfsumError
from qfsum.document import Document
from qfsum.pipeline import PipelineConfig
from qfsum.writers import Evidence, WriterConfig, build_writer
from qfsum.writers.extractive import MIN_CONTENT_WORDS, ExtractiveWriter, informative_words

TURNS = [
    ("Marketing", "Wow ."),
    ("Project Manager", "The remote control budget is twelve euros fifty per unit, set by finance."),
    ("Industrial Designer", "Huh ? A cat ."),
    ("Marketing", "Yeah , yeah . I mean , okay ."),
    ("User Interface", "We chose a yellow rubber case with a kinetic battery to stay under budget."),
    ("Project Manager", "Mm-hmm ."),
]
DOCUMENT = Document.from_units(TURNS, "meeting")


def _ranked(order: list[int]) -> list[Evidence]:
    """Every turn, in the given rank order, with decreasing scores."""
    return [Evidence(DOCUMENT.units[i], 1.0 / (rank + 1)) for rank, i in enumerate(order)]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Wow .", set()),
        ("Huh ? A cat .", {"cat"}),
        ("Yeah , yeah . I mean , okay .", set()),
        ("That 's right .", set()),  # QMSum writes contractions apart: the lone 's' is no word
        ("Twelve fifty .", {"twelve", "fifty"}),
        ("We chose a yellow case .", {"chose", "yellow", "case"}),
    ],
)
def test_informative_words_leave_out_speaker_fillers_and_stop_words(text, expected):
    segment = Document.from_units([("Industrial Designer", text)]).units[0]
    assert informative_words(segment) == expected  # the speaker label is not counted


def test_filler_turns_do_not_take_the_budget():
    # The filler is ranked first: before the filter it filled the answer ahead of the content turns.
    ranked = _ranked([0, 2, 3, 5, 1, 4])
    writer = ExtractiveWriter(budget=40)
    (draft,) = writer.write_batch(["What was decided about the budget?"], [ranked])
    assert [e.segment.index for e in draft.evidence] == [1, 4]
    assert "Wow" not in draft.text and "cat" not in draft.text
    assert draft.text == "\n".join(e.segment.text for e in draft.evidence)


def test_zero_keeps_the_old_behaviour():
    ranked = _ranked([0, 2, 3, 5, 1, 4])
    (draft,) = ExtractiveWriter(budget=40, min_content_words=0).write_batch(["q"], [ranked])
    assert 0 in [e.segment.index for e in draft.evidence]  # "Wow ." is back


def test_all_filler_still_answers():
    ranked = _ranked([0, 5])
    (draft,) = ExtractiveWriter(budget=40).write_batch(["q"], [ranked])
    assert [e.segment.index for e in draft.evidence] == [0, 5]


def test_config_knob_default_and_validation():
    assert build_writer(WriterConfig(kind="extractive")).min_content_words == MIN_CONTENT_WORDS == 2
    assert build_writer(WriterConfig(kind="extractive", min_content_words=0)).min_content_words == 0
    with pytest.raises(QfsumError, match="min_content_words must be >= 0"):
        WriterConfig(kind="extractive", min_content_words=-1)
    with pytest.raises(QfsumError, match="min_content_words is the extractive writer's"):
        WriterConfig(kind="generative", model="smollm2", min_content_words=2)


def test_pipeline_json_sets_the_knob(tmp_path):
    config = PipelineConfig.from_dict({
        "segmenter": {"kind": "turn"}, "scorer": {"kind": "bm25"},
        "writer": {"kind": "extractive", "summary_words": 40, "min_content_words": 0}, "grounding": "off",
    })
    keep = Pipeline(config)
    drop = Pipeline(PipelineConfig.from_dict({**config.to_dict(), "writer": {"kind": "extractive", "summary_words": 40}}))
    query = "wow cat budget"  # BM25 ranks the filler turns that hold the query's words high
    assert "Wow ." in keep.summarize(DOCUMENT, query).text
    assert "Wow ." not in drop.summarize(DOCUMENT, query).text

"""Readers: text, Markdown, JSONL and QMSum into Documents and Examples."""

from __future__ import annotations

import json

import pytest
from conftest import JSONL_RECORDS, MARKDOWN_TEXT, MEETING_B, PLAIN_TEXT, VAL_IDS, write_jsonl

from qfsum import QfsumError
from qfsum.document import Document
from qfsum.readers import (
    clean_qmsum,
    decode_text,
    document_from_text,
    paragraph_units,
    qmsum_document,
    qmsum_examples,
    read_document,
    read_examples,
    read_text_file,
)
from qfsum.segment import turn_segments


def _check_units(document: Document) -> None:
    for i, unit in enumerate(document.units):
        assert unit.index == i
        assert document.text[unit.start : unit.end] == unit.text


# -- plain text and Markdown ------------------------------------------------------------------


def test_paragraphs_split_on_blank_lines(text_path):
    document, queries = read_document(text_path)
    assert queries == []
    assert document.id == "notes"
    assert document.text == PLAIN_TEXT
    assert [u.text for u in document.units] == [
        "The town council met on Monday evening.\nEveryone was present.",
        "The budget for the new bridge was cut by ten percent because steel prices rose.",
        "Dr. Smith presented the library report. The reading room will close in March.",
        "The meeting ended at nine.",
    ]
    _check_units(document)


def test_lines_are_units_when_there_are_no_blank_lines():
    text = "first line\n  second line  \n\tthird line"
    units = paragraph_units(text)
    assert [u.text for u in units] == ["first line", "second line", "third line"]
    assert [(u.start, u.end) for u in units] == [(0, 10), (13, 24), (28, 38)]


def test_paragraphs_with_whitespace_only_separator_lines():
    text = "one a\none b\n   \t\ntwo\n\n\n\nthree  "
    assert [u.text for u in paragraph_units(text)] == ["one a\none b", "two", "three"]
    _check_units(Document(text, paragraph_units(text)))


def test_crlf_paragraphs():
    text = "Para one first line\r\nPara one second line\r\n\r\nPara two\r\n"
    assert [u.text for u in paragraph_units(text)] == ["Para one first line\r\nPara one second line", "Para two"]


def test_markdown_is_read_as_paragraphs(markdown_path):
    document, queries = read_document(markdown_path)
    assert queries == []
    assert document.text == MARKDOWN_TEXT
    assert [u.text for u in document.units] == [
        "# Council notes",
        "The council met on Monday.",
        "## Budget",
        "- the bridge budget was cut\n- steel prices rose",
        "Closing remarks by the mayor.",
    ]
    _check_units(document)


def test_document_from_text_rejects_blank_text():
    with pytest.raises(QfsumError, match="empty"):
        document_from_text(" \n\t\n")


def test_utf8_bom_is_dropped(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffHello world.".encode())
    assert read_text_file(path) == "Hello world."


@pytest.mark.parametrize(
    "data, message",
    [(b"abc\x00def", "binary"), (b"caf\xe9", "not valid UTF-8 \\(byte 3\\)")],
)
def test_decode_text_errors(data, message):
    with pytest.raises(QfsumError, match=message):
        decode_text(data, "x")


def test_read_text_file_errors(tmp_path):
    with pytest.raises(QfsumError, match="no such file"):
        read_text_file(tmp_path / "missing.txt")
    with pytest.raises(QfsumError, match="is a directory"):
        read_text_file(tmp_path)


# -- JSONL ------------------------------------------------------------------------------------


def test_jsonl_examples_both_forms(jsonl_path):
    examples = read_examples(jsonl_path)
    assert [e.id for e in examples] == ["doc1", "seg1", "seg2"]

    doc1, seg1, seg2 = examples
    # `document`: a string, its units are paragraphs
    assert doc1.document.text == JSONL_RECORDS[0]["document"]
    assert [u.text for u in doc1.document.units][1] == "The budget for the bridge was cut by ten percent."
    assert doc1.query == "What happened to the bridge budget?"
    assert doc1.references == ["The bridge budget was cut by ten percent."]
    assert doc1.spans == [(1, 1)]
    assert doc1.gold_units() == {1}

    # `segments` as strings: one unit per line, no speaker; `summaries` is a list
    assert seg1.document.text == "The orchard has apple trees.\nThe pears were harvested in October.\nCider is made in May."
    assert [u.speaker for u in seg1.document.units] == [None, None, None]
    assert seg1.references == ["In October.", "The pears were harvested in October."]

    # `segments` as objects: "Speaker: text"
    assert [u.text for u in seg2.document.units] == [
        "Alice: I booked the venue for Friday.",
        "Bob: I will order the catering.",
        "Applause.",
    ]
    assert [u.speaker for u in seg2.document.units] == ["Alice", "Bob", None]
    assert seg2.spans == []
    for example in examples:
        _check_units(example.document)


def test_read_document_jsonl_gives_first_record_and_its_query(jsonl_path):
    document, queries = read_document(jsonl_path)
    assert document.id == "doc1"
    assert queries == ["What happened to the bridge budget?"]


def test_jsonl_blank_lines_are_skipped_and_line_numbers_reported(tmp_path):
    path = tmp_path / "gaps.jsonl"
    lines = [json.dumps(JSONL_RECORDS[0]), "", json.dumps(JSONL_RECORDS[1]), "{not json"]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(QfsumError, match=r"gaps\.jsonl:4: malformed JSON"):
        read_examples(path)
    path.write_text("\n".join(lines[:3]) + "\n")
    assert [e.id for e in read_examples(path)] == ["doc1", "seg1"]


@pytest.mark.parametrize(
    "record, message",
    [
        ({"document": "text", "query": "  "}, "non-empty 'query'"),
        ({"document": "  ", "query": "q"}, "the document is empty"),
        ({"segments": ["", " "], "query": "q"}, "the document is empty"),
        ({"segments": [3], "query": "q"}, "each segment must be a string"),
        ({"query": "q"}, "needs 'document'"),
        ({"document": "text", "query": "q", "summary": 3}, "'summary' must be a string"),
        ({"document": "text", "query": "q", "spans": [1, 2]}, "'spans' must be a list"),
    ],
)
def test_jsonl_record_errors_name_the_line(tmp_path, record, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [JSONL_RECORDS[0], record])
    with pytest.raises(QfsumError, match=message) as info:
        read_examples(path)
    assert "bad.jsonl:2" in str(info.value)


def test_jsonl_non_object_line(tmp_path):
    path = tmp_path / "list.jsonl"
    path.write_text("[1, 2]\n")
    with pytest.raises(QfsumError, match=r"list\.jsonl:1: expected a JSON object"):
        read_examples(path)


def test_empty_jsonl_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(QfsumError, match="no examples"):
        read_examples(path)


def test_jsonl_with_unicode_line_separator_inside_a_string(tmp_path):
    path = tmp_path / "u2028.jsonl"
    record = {"id": "a", "query": "What was approved?", "document": "The budget\u2028was approved.", "summary": "ok"}
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    examples = read_examples(path)
    assert examples[0].document.text == "The budget\u2028was approved."


def test_jsonl_numeric_speaker(tmp_path):
    path = write_jsonl(tmp_path / "num.jsonl", [{"segments": [{"speaker": 5, "text": "Hello there."}], "query": "q"}])
    (example,) = read_examples(path)
    segments = turn_segments(example.document)
    assert [s.text for s in segments] == ["5: Hello there."]


# -- QMSum ------------------------------------------------------------------------------------


def test_clean_qmsum_strips_markup_and_spaces():
    assert clean_qmsum("Okay {vocalsound} let's  go {disfmarker}.") == "Okay let's go ."
    assert clean_qmsum("{ gap }\t{vocalsound}  ") == ""


def test_qmsum_document_turns_and_markup(qmsum_root):
    examples = read_examples(qmsum_root, "val")
    document = examples[0].document
    assert document.id == "meeting_b"
    assert len(document.units) == len(MEETING_B["meeting_transcripts"])
    texts = [u.text for u in document.units]
    assert texts[0] == "Project Manager: Okay let's start. Today we discuss the remote control design and the budget."
    assert texts[2] == "Industrial Designer: The case will be made of rubber because rubber is cheap and soft."
    assert texts[6] == "Project Manager: We decided to drop voice recognition because of the budget. Meeting closed."
    assert "{" not in document.text and "}" not in document.text
    assert [u.speaker for u in document.units][:2] == ["Project Manager", "Marketing"]
    _check_units(document)
    # the markup-only turn stays a unit (gold spans count turns) but is never a segment
    assert texts[1].strip() == "Marketing:"
    segments = turn_segments(document)
    assert len(segments) == 6
    assert all("Marketing: " != s.text for s in segments)
    assert [s.index for s in segments] == list(range(6))


def test_qmsum_general_then_specific_queries_with_spans(qmsum_root):
    examples = read_examples(qmsum_root, split="val")
    assert [e.id for e in examples] == VAL_IDS
    general, spec0, spec1 = examples[:3]
    assert general.query == "Summarize the whole meeting."
    assert general.spans == []
    assert general.references == [MEETING_B["general_query_list"][0]["answer"]]
    assert spec0.query == "What did the group decide about voice recognition?"
    assert spec0.spans == [(5, 6)]
    assert spec1.spans == [(2, 2), (4, 4)]
    assert spec1.gold_units() == {2, 4}
    assert spec0.references == ["They dropped voice recognition because of the budget."]
    # all queries of a meeting share one document object
    assert general.document is spec0.document


def test_read_examples_other_splits_and_single_file(qmsum_root):
    assert [e.id for e in read_examples(qmsum_root, "train")] == ["meeting_a-g0"]
    assert [e.id for e in read_examples(qmsum_root, "test")] == ["meeting_d-g0", "meeting_d-s0"]
    assert [e.id for e in read_examples(qmsum_root / "val")] == VAL_IDS
    single = read_examples(qmsum_root / "val" / "meeting_c.json")
    assert [e.id for e in single] == ["meeting_c-g0", "meeting_c-s0"]


def test_read_document_qmsum_carries_its_queries(qmsum_root):
    document, queries = read_document(qmsum_root / "val" / "meeting_c.json")
    assert document.id == "meeting_c"
    assert queries == ["What was the meeting about?", "What will replace the reading room while it is closed?"]


def test_read_examples_errors(qmsum_root, tmp_path):
    with pytest.raises(QfsumError, match="has no 'dev' folder"):
        read_examples(qmsum_root, "dev")
    with pytest.raises(QfsumError, match="no such file or directory"):
        read_examples(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(QfsumError, match="no QMSum .json files"):
        read_examples(tmp_path / "empty")
    other = tmp_path / "data.csv"
    other.write_text("a,b\n")
    with pytest.raises(QfsumError, match="expected a QMSum folder"):
        read_examples(other)


@pytest.mark.parametrize(
    "meeting, message",
    [
        ([1, 2], "expected a JSON object"),
        ({"general_query_list": []}, "no 'meeting_transcripts' list"),
        ({"meeting_transcripts": []}, "no 'meeting_transcripts' list"),
        (
            {"meeting_transcripts": [{"speaker": "A", "content": "x"}], "specific_query_list": [{"query": "q"}]},
            r"specific_query_list\[0\] needs 'query', 'answer'",
        ),
        (
            {
                "meeting_transcripts": [{"speaker": "A", "content": "x"}],
                "specific_query_list": [{"query": "q", "answer": "a", "relevant_text_span": [["1"]]}],
            },
            r"specific_query_list\[0\]",
        ),
    ],
)
def test_qmsum_malformed_meetings(meeting, message):
    with pytest.raises(QfsumError, match=message):
        qmsum_examples(meeting, "m")


def test_qmsum_turns_that_are_not_objects():
    with pytest.raises(QfsumError):
        qmsum_document({"meeting_transcripts": ["hello there", "second"]}, "m")


def test_qmsum_json_malformed_names_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "meeting_transcripts": [,]\n}')
    with pytest.raises(QfsumError, match=r"broken\.json: malformed JSON at line 2, column 27"):
        read_document(path)


def test_qmsum_null_speaker_and_content():
    document = qmsum_document(
        {"meeting_transcripts": [{"speaker": None, "content": "Hello."}, {"speaker": "A", "content": None}]}, "m"
    )
    assert [u.text for u in document.units] == ["Hello.", "A: "]
    assert [u.speaker for u in document.units] == [None, "A"]

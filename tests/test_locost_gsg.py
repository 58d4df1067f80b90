"""Gap-sentence generation data: target selection, ROUGE-1 against rouge-score, pieces, corpora."""

from __future__ import annotations

import json

import pytest
from rouge_score import rouge_scorer

from qfsum.document import Document
from qfsum.errors import QfsumError
from qfsum.readers import read_examples
from qfsum.training.seq2seq.gsg import (
    GSG_QUERY,
    document_sentences,
    gsg_records,
    pieces,
    read_corpus,
    rouge1_against_rest,
    select_gap_sentences,
    write_gsg,
)

# Sentence 2 repeats the words the others share (rubber, case, budget, remote): it is the one chosen.
SENTENCES = [
    "The team met to design the remote control.",
    "Rubber was proposed for the case.",
    "The rubber case of the remote fits the budget of the team.",
    "Lunch was served at noon.",
    "The budget is twelve euros.",
]


def test_rouge1_against_the_rest_equals_rouge_score():
    scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
    expected = [scorer.score(" ".join(SENTENCES[:i] + SENTENCES[i + 1 :]), s)["rouge1"].fmeasure
                for i, s in enumerate(SENTENCES)]
    assert rouge1_against_rest(SENTENCES) == pytest.approx(expected, abs=1e-12)


def test_the_best_sentence_becomes_the_target_and_leaves_the_input():
    example = select_gap_sentences(SENTENCES, alpha=0.2)  # floor(0.2 * 5) = 1 sentence
    assert example.chosen == (2,)
    assert example.target == SENTENCES[2]
    assert example.source == " ".join(SENTENCES[:2] + SENTENCES[3:])


def test_several_targets_keep_document_order():
    example = select_gap_sentences(SENTENCES * 2, alpha=0.2)  # 2 of 10: both copies of sentence 2 tie for first
    assert example.chosen == (2, 7)
    assert example.target == f"{SENTENCES[2]} {SENTENCES[2]}"


def test_too_few_sentences_give_no_example_and_a_bad_ratio_is_an_error():
    assert select_gap_sentences(SENTENCES[:4], alpha=0.2) is None  # floor(0.8) = 0
    with pytest.raises(QfsumError, match="ratio"):
        select_gap_sentences(SENTENCES, alpha=1.0)


def test_sentences_are_split_line_by_line_and_grouped_into_pieces():
    text = "Alice: We start now. The budget is tight\nBob: I agree. Let us go."
    sentences = document_sentences(text)
    assert sentences == ["Alice: We start now.", "The budget is tight", "Bob: I agree.", "Let us go."]
    assert [len(p) for p in pieces(sentences, piece_words=8)] == [2, 2]
    assert [len(p) for p in pieces(["one two three four five six seven", "a b"], piece_words=3)] == [1, 1]


def test_records_of_a_long_document_come_in_pieces():
    document = Document(" ".join(SENTENCES * 4), id="doc")
    records = list(gsg_records([document], alpha=0.2, piece_words=45))
    assert len(records) >= 2
    assert all(r["query"] == GSG_QUERY and r["summary"] and r["document"] for r in records)
    assert records[0]["id"] == "doc#0"


def test_corpora_of_txt_files_and_jsonl_documents(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text(" ".join(SENTENCES))
    (folder / "b.txt").write_text("Short text.")
    assert [d.id for d in read_corpus(folder)] == ["a", "b"]
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text(json.dumps({"id": "x", "document": " ".join(SENTENCES)}) + "\n")
    assert read_corpus(jsonl)[0].text.startswith("The team met")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(QfsumError, match="no .txt"):
        read_corpus(empty)


def test_written_records_read_back_as_examples(tmp_path, qmsum_root):
    documents = read_corpus(qmsum_root, "val")  # meeting b: 9 sentences, one gap sentence
    out = tmp_path / "gsg.jsonl"
    n = write_gsg(documents, out, alpha=0.2, piece_words=1024)
    examples = read_examples(out)
    assert n == len(examples) >= 1
    assert examples[0].query == GSG_QUERY and examples[0].references[0]
    with pytest.raises(QfsumError, match="no GSG examples"):
        write_gsg([Document("One. Two.")], tmp_path / "none.jsonl")

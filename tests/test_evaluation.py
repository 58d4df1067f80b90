"""ROUGE against hand-computed values; extractor metrics, spans and the gold ranking."""

from __future__ import annotations

import pytest

from qfsum.budget import WordCounter
from qfsum.document import Document, Example, Segment
from qfsum.evaluation import ROUGE_KEYS, mean_scores, rouge
from qfsum.evaluation.extractor import aggregate, example_metrics, gold_ranking, selections
from qfsum.evaluation.spans import covered_units, gold_span_recall, gold_units, span_precision_recall
from qfsum.document import Evidence

# -- ROUGE -----------------------------------------------------------------------------------------


def test_rouge_unigram_bigram_and_lcs_by_hand():
    # prediction: the cat sat on the mat / reference: the cat lay on a mat (6 tokens each)
    # unigram overlap: the, cat, on, mat = 4 -> P = R = 4/6; bigram overlap: "the cat" = 1 of 5;
    # LCS: the cat on mat = 4
    scores = rouge("the cat sat on the mat", ["the cat lay on a mat"])
    assert set(scores) == set(ROUGE_KEYS)
    assert scores["rouge1"] == pytest.approx(100 * 4 / 6)
    assert scores["rouge2"] == pytest.approx(100 * 1 / 5)
    assert scores["rougeL"] == pytest.approx(100 * 4 / 6)


def test_rouge_precision_recall_asymmetry():
    # prediction 4 tokens all in the 7-token reference: P = 1, R = 4/7, F = 2PR/(P+R) = 8/11
    scores = rouge("the budget was cut", ["the budget was cut by ten percent"], ["rouge1"])
    assert scores == {"rouge1": pytest.approx(100 * 8 / 11)}


def test_rouge_uses_porter_stemming_and_ignores_case_and_punctuation():
    assert rouge("Meetings, BUDGETS!", ["meeting budget"], ["rouge1"])["rouge1"] == pytest.approx(100.0)


def test_rouge_multi_reference_is_the_max_per_metric():
    prediction = "the cat sat on the mat"
    single = rouge(prediction, ["the cat lay on a mat"])
    multi = rouge(prediction, ["completely unrelated words here", "the cat lay on a mat"])
    assert multi == pytest.approx(single)
    assert rouge(prediction, ["completely unrelated words here"])["rouge1"] == 0.0


def test_rougelsum_differs_from_rougel_on_reordered_sentences():
    # tokens (stemmed): the budget was approv the team met on monday; the prediction swaps the sentences.
    # rougeL: one LCS over the whole text = "the team met on monday" = 5 of 9 -> 55.56
    # rougeLsum: per reference sentence (union LCS), every token matched -> 100
    # rouge2: 7 of 8 bigrams shared (not the one across the sentence join) -> 87.5
    scores = rouge("The team met on Monday. The budget was approved.", ["The budget was approved. The team met on Monday."])
    assert scores["rouge1"] == pytest.approx(100.0)
    assert scores["rouge2"] == pytest.approx(87.5)
    assert scores["rougeL"] == pytest.approx(100 * 5 / 9)
    assert scores["rougeLsum"] == pytest.approx(100.0)


REFERENCE = "The team met on Monday. The budget was approved. Marketing will report in May."
PREDICTION = "The budget was approved. The team met on Monday. Marketing reports in May."


def test_rougelsum_splits_lowercased_and_tokenized_text_as_its_cased_original():
    cased = rouge(PREDICTION, [REFERENCE])
    lowered = rouge(PREDICTION.lower(), [REFERENCE.lower()])
    tokenized = rouge(PREDICTION.lower().replace(".", " ."), [REFERENCE.lower().replace(".", " .")])
    assert cased["rougeLsum"] > cased["rougeL"] + 10  # the test can fail: the split matters here
    for scores in (lowered, tokenized):
        assert scores == pytest.approx(cased)


def test_rougelsum_of_lowercased_text_equals_one_sentence_per_line():
    lines = "\n".join(s.lower() for s in ("the budget was approved.", "the team met on monday."))
    reference = "the team met on monday. the budget was approved."
    assert rouge(lines.replace("\n", " "), [reference])["rougeLsum"] == pytest.approx(100.0)


def test_rouge_empty_prediction_is_zero_and_no_reference_is_an_error():
    assert rouge("", ["some reference"]) == dict.fromkeys(ROUGE_KEYS, 0.0)
    with pytest.raises(ValueError):
        rouge("x", [])


def test_mean_scores():
    assert mean_scores([{"a": 1.0, "b": 4.0}, {"a": 3.0, "b": 0.0}]) == {"a": 2.0, "b": 2.0}
    assert mean_scores([]) == {}


# -- spans -----------------------------------------------------------------------------------------

UNITS = ["alpha beta gamma", "the budget was cut", "by ten percent", "delta epsilon", "zeta eta theta iota"]


def _example(spans=((1, 2),), units=UNITS, speakers=None) -> Example:
    speakers = speakers or [None] * len(units)
    document = Document.from_units(list(zip(speakers, units)), id="hand")
    return Example("hand-s0", document, "what happened to the budget", ["the budget was cut by ten percent"], list(spans))


def _evidence(example: Example, order: list[int]) -> list[Evidence]:
    units = example.document.units
    return [Evidence(units[i], float(len(order) - r)) for r, i in enumerate(order)]


def test_covered_units_by_offsets():
    example = _example()
    units = example.document.units
    assert covered_units(example.document, [units[3]]) == {3}
    window = Segment(0, "", units[1].start + 4, units[3].start + 2)  # from inside unit 1 into unit 3
    assert covered_units(example.document, [window]) == {1, 2, 3}
    assert covered_units(example.document, [units[0], units[4]]) == {0, 4}


def test_span_precision_recall_by_hand():
    example = _example()
    units = example.document.units
    assert span_precision_recall(example, [units[1], units[3]]) == (0.5, 0.5)
    assert span_precision_recall(example, [units[1], units[2]]) == (1.0, 1.0)
    assert span_precision_recall(example, []) == (0.0, 0.0)
    assert span_precision_recall(_example(spans=()), [units[1]]) is None


def test_gold_span_recall_is_the_share_of_spans_touched():
    example = _example(spans=[(0, 1), (3, 4)])
    units = example.document.units
    assert gold_span_recall(example, [units[1]]) == 0.5  # touches the first span only
    assert gold_span_recall(example, [units[1], units[3]]) == 1.0  # one turn of each: unit recall is lower
    assert span_precision_recall(example, [units[1], units[3]])[1] == 0.5
    assert gold_span_recall(example, [units[2]]) == 0.0
    assert gold_span_recall(_example(spans=()), [units[1]]) is None


def test_gold_units_leave_out_content_free_and_out_of_range_units():
    example = _example(spans=[(0, 2), (7, 9)], units=["", "real words", "more words"], speakers=["A", "B", "C"])
    assert example.gold_units() == {0, 1, 2, 7, 8, 9}
    assert gold_units(example) == {1, 2}


def test_span_precision_ignores_content_free_units_inside_a_window():
    example = _example(
        spans=[(0, 2)], units=["the budget was cut", "", "by ten percent"], speakers=["Ann", "Bob", "Ann"]
    )
    units = example.document.units
    window = Segment(0, example.document.text, units[0].start, units[2].end)
    assert span_precision_recall(example, [window]) == (1.0, 1.0)


# -- extractor metrics -------------------------------------------------------------------------------


def test_selections_top_k_and_topall():
    example = _example()
    ranked = _evidence(example, [1, 3, 2, 0, 4])
    chosen = selections(ranked, 9, WordCounter())
    assert [e.segment.index for e in chosen["top1"]] == [1]
    assert [e.segment.index for e in chosen["top5"]] == [0, 1, 2, 3, 4]  # document order
    assert [e.segment.index for e in chosen["top15"]] == [0, 1, 2, 3, 4]
    # 4 + 2 + 3 words = 9, the budget
    assert [e.segment.index for e in chosen["topall"]] == [1, 2, 3]


def test_example_metrics_by_hand():
    example = _example()
    ranked = _evidence(example, [1, 3, 2, 0, 4])
    row = example_metrics(example, ranked, 5, WordCounter())
    # top1 = "the budget was cut": P = 1, R = 4/7
    assert row["top1_rouge1"] == pytest.approx(100 * 8 / 11)
    assert row["top1_words"] == 4
    assert row["top5_words"] == 16 and row["top15_words"] == 16
    # topall with a 5-word budget: unit 1 (4 words) + the first word of unit 3 -> units {1, 3}
    assert row["topall_words"] == 5
    assert row["span_precision"] == pytest.approx(50.0)
    assert row["span_recall"] == pytest.approx(50.0)
    assert row["gold_span_recall"] == pytest.approx(100.0)  # one gold span, touched
    metrics = ("rouge1", "rouge2", "rougeL", "rougeLsum", "words")
    expected_keys = {f"{s}_{m}" for s in ("top1", "top5", "top15", "topall") for m in metrics}
    assert set(row) == expected_keys | {"span_precision", "span_recall", "gold_span_recall"}


def test_example_metrics_without_spans_has_no_span_keys():
    example = _example(spans=())
    row = example_metrics(example, _evidence(example, [0, 1, 2, 3, 4]), 100, WordCounter())
    assert "span_precision" not in row and "span_recall" not in row
    assert row["topall_words"] == 16


def test_gold_ranking_is_the_gold_units_in_document_order():
    example = _example(spans=[(3, 3), (1, 1)])
    ranked = _evidence(example, [4, 3, 0, 1, 2])
    gold = gold_ranking(example, ranked)
    assert [e.segment.index for e in gold] == [1, 3]
    assert all(e.score == 1.0 for e in gold)
    row = example_metrics(example, gold, 1024, WordCounter())
    assert row["span_precision"] == 100.0 and row["span_recall"] == 100.0


def test_aggregate_means_and_counts():
    rows = [{"top1_rouge1": 10.0, "span_recall": 50.0}, {"top1_rouge1": 30.0}]
    metrics = aggregate(rows)
    assert metrics == {"top1_rouge1": 20.0, "span_recall": 50.0, "n": 2, "n_with_spans": 1}


# -- the evaluate runner: a --limit that grows, what rows record --------------------------------------


def _cli_rows(path):
    import json

    return [json.loads(line) for line in path.read_text().splitlines()]


def test_evaluate_limit_grows_on_the_same_out_and_keeps_earlier_predictions(capsys, qmsum_root, tmp_path):
    import json

    from conftest import VAL_IDS, assert_one_error_line, cli

    out = tmp_path / "run"
    base = ["evaluate", "--data", qmsum_root, "--split", "val", "-p", "extractive-bm25", "--out", out, "--no-progress"]
    assert cli(capsys, *base, "--limit", "2")[0] == 0
    first = _cli_rows(out / "predictions.jsonl")
    marked = [{**first[0], "prediction": "kept from the first run"}, first[1]]  # proves row 0 is not redone
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in marked))

    code, _, err = cli(capsys, *base, "--limit", "4")
    assert code == 0, err
    rows = _cli_rows(out / "predictions.jsonl")
    assert [r["id"] for r in rows] == VAL_IDS[:4]
    assert rows[0]["prediction"] == "kept from the first run"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 4 and metrics["resumed"] == 2
    assert json.loads((out / "run.json").read_text())["ids"] == VAL_IDS[:4]

    code, _, err = cli(capsys, *base)  # no --limit: all of val
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["n"] == len(VAL_IDS)

    code, _, err = cli(capsys, *base, "--limit", "3")  # fewer than the folder holds: refused
    assert "more than the 3 asked for" in assert_one_error_line(code, err)


def test_evaluate_rows_record_query_type_document_length_and_evidence_spans(capsys, qmsum_root, tmp_path):
    from conftest import cli

    from qfsum.readers import read_examples
    from qfsum.text import count_words

    out = tmp_path / "run"
    code, _, err = cli(capsys, "evaluate", "--data", qmsum_root, "--split", "val", "-p", "extractive-bm25",
                       "--out", out, "--no-progress", "--limit", "2")
    assert code == 0, err
    examples = read_examples(qmsum_root, "val")
    for row, example in zip(_cli_rows(out / "predictions.jsonl"), examples):
        assert row["query_type"] == ("general" if example.id.endswith("-g0") else "specific")
        assert row["document_words"] == count_words(example.document.text)
        texts = [example.document.text[a:b] for a, b in row["evidence_spans"]]
        assert len(texts) == len(row["evidence"]) and all(t and t in row["prediction"] for t in texts)


def test_evaluate_extractor_says_which_rouge_l_is_which(capsys, qmsum_root, tmp_path):
    from conftest import cli

    code, out, err = cli(capsys, "evaluate-extractor", "--data", qmsum_root, "--split", "val", "--scorer", "bm25",
                         "--tokenizer", "words", "--out", tmp_path / "ext", "--no-progress")
    assert code == 0, err
    header = out.splitlines()[0].split()
    assert header[:5] == ["selection", "rouge1", "rouge2", "rougeL", "rougeLsum"]
    assert "rougeL is plain ROUGE-L" in out and "rougeLsum is QMSum's R-L" in out

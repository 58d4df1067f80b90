"""Writers: extractive under a word budget; generative (tiny random causal and seq2seq LMs)."""

from __future__ import annotations

import pytest

from qfsum import QfsumError
from qfsum.document import Segment
from qfsum.writers import Draft, Evidence, WriterConfig, build_writer
from qfsum.writers.extractive import ExtractiveWriter
from qfsum.readers import document_from_text
from qfsum.retrieval.lexical import BM25Scorer
from qfsum.retrieval import rank
from qfsum.segment import Segmenter

PARAGRAPHS = [
    f"Paragraph {i} is about the {topic} and says that item {i} was discussed at some length by the team."
    for i, topic in enumerate(["budget", "rubber case", "voice recognition", "colours", "budget overrun"] * 6)
]
DOCUMENT = document_from_text("\n\n".join(PARAGRAPHS), "synthetic")
SEGMENTS = Segmenter()(DOCUMENT)
QUERIES = ["What about the budget?", "Which colours were chosen?", "Was voice recognition kept?"]


def _ranked(query: str) -> list[Evidence]:
    scores = BM25Scorer().score(query, SEGMENTS)
    return [Evidence(SEGMENTS[i], float(scores[i])) for i in rank(scores)]


# -- config ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "abstractive"}, "unknown writer"),
        ({"kind": "generative"}, "needs a model"),
        ({"kind": "extractive", "summary_words": 0}, "summary_words must be >= 1"),
        ({"kind": "generative", "model": "smollm2", "input_tokens": 0}, "input_tokens must be >= 1"),
    ],
)
def test_writer_config_validation(kwargs, message):
    with pytest.raises(QfsumError, match=message):
        WriterConfig(**kwargs)


def test_generative_writer_unknown_model():
    with pytest.raises(QfsumError, match="unknown model 'no-such-model'"):
        build_writer(WriterConfig(kind="generative", model="no-such-model"))


def test_generative_writer_model_dir_that_is_not_a_model(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(QfsumError, match="cannot load model"):
        build_writer(WriterConfig(kind="generative", model=str(tmp_path)))


# -- extractive --------------------------------------------------------------------------------------


def test_extractive_writer_respects_word_budget_and_document_order():
    writer = build_writer(WriterConfig(kind="extractive", summary_words=45))
    assert isinstance(writer, ExtractiveWriter) and writer.budget == 45
    drafts = writer.write_batch(QUERIES, [_ranked(q) for q in QUERIES])
    assert len(drafts) == 3 and all(isinstance(d, Draft) for d in drafts)
    for query, draft in zip(QUERIES, drafts):
        assert 0 < len(draft.text.split()) <= 45
        starts = [e.segment.start for e in draft.evidence]
        assert starts == sorted(starts)
        assert draft.text == "\n".join(e.segment.text for e in draft.evidence)
        assert _ranked(query)[0].segment in [e.segment for e in draft.evidence]  # the best one is in
    assert "budget" in drafts[0].text


def test_extractive_writer_default_budget_is_100_words():
    writer = build_writer(WriterConfig(kind="extractive"))
    (draft,) = writer.write_batch(["budget"], [_ranked("budget")])
    assert writer.budget == 100
    assert 80 < len(draft.text.split()) <= 100  # each paragraph is ~19 words


def test_extractive_writer_cuts_a_segment_longer_than_the_budget():
    text = " ".join(f"w{i}" for i in range(50))
    segment = Segment(0, text, 0, len(text))
    (draft,) = ExtractiveWriter(budget=5).write_batch(["q"], [[Evidence(segment, 1.0)]])
    assert draft.text == "w0 w1 w2 w3 w4"
    assert draft.evidence[0].segment.end == len("w0 w1 w2 w3 w4")


# -- generative: tiny causal LM (WordPiece tokenizer, no chat template) ----------------------------


@pytest.fixture(scope="module")
def causal_writer(tiny_causal_dir):
    return build_writer(WriterConfig(kind="generative", model=str(tiny_causal_dir), input_tokens=200, max_new_tokens=6))


def test_generative_prompt_fits_the_budget_exactly(causal_writer):
    writer = causal_writer
    assert not writer.is_seq2seq
    for budget in (120, 150, 200, 333):
        writer.budget = budget
        for query in QUERIES:
            ids, evidence = writer.prompt(query, _ranked(query))
            assert len(ids) <= budget
            # the prompt is whole: the evidence that fits, then the question (nothing cut off the end)
            assert ids == writer._prompt_ids("\n".join(e.segment.text for e in evidence), query)
            assert query.lower().rstrip("?") in writer.tokenizer.decode(ids).lower()
            assert len(evidence) < len(SEGMENTS)  # the budget, not the document, limited it
            # a tight fit: no room left for another whole segment of ~25 tokens
            assert budget - len(ids) < 25
    writer.budget = 200


def test_generative_evidence_is_in_document_order_and_led_by_the_best(causal_writer):
    ranked = _ranked("voice recognition")
    _, evidence = causal_writer.prompt("voice recognition", ranked)
    starts = [e.segment.start for e in evidence]
    assert starts == sorted(starts)
    assert ranked[0].segment.index in [e.segment.index for e in evidence]
    # the best segments in rank order (the last one possibly cut to the room)
    assert {e.segment.index for e in evidence} == {e.segment.index for e in ranked[: len(evidence)]}


def test_generative_query_too_long(causal_writer):
    with pytest.raises(QfsumError, match="the query is too long"):
        causal_writer.prompt("budget " * 300, _ranked("budget"))


def test_generative_batch_of_three_returns_three_drafts(tiny_causal_dir):
    writer = build_writer(
        WriterConfig(kind="generative", model=str(tiny_causal_dir), input_tokens=160, max_new_tokens=5, batch_size=2)
    )
    drafts = writer.write_batch(QUERIES, [_ranked(q) for q in QUERIES])
    assert len(drafts) == 3
    for query, draft in zip(QUERIES, drafts):
        assert isinstance(draft.text, str) and draft.text.strip()
        assert draft.evidence == writer.prompt(query, _ranked(query))[1]
    # batching (with left padding) gives the same answers as one query at a time
    singles = [writer.write_batch([q], [_ranked(q)])[0].text for q in QUERIES]
    assert [d.text for d in drafts] == singles


def test_model_generation_config_adds_no_prompt_wide_ban(causal_writer, monkeypatch):
    """A model whose generation_config bans repeated n-grams must not ban copying from the prompt:
    every n-gram ban applied sees the answer only, never the prompt's ids."""
    from transformers import NoRepeatNGramLogitsProcessor

    seen: list[int] = []
    original = NoRepeatNGramLogitsProcessor.__call__

    def spy(self, input_ids, scores):
        seen.append(input_ids.shape[1])
        return original(self, input_ids, scores)

    monkeypatch.setattr(NoRepeatNGramLogitsProcessor, "__call__", spy)
    monkeypatch.setattr(causal_writer.model.generation_config, "no_repeat_ngram_size", 2)
    query = QUERIES[0]
    prompt_length = len(causal_writer.prompt(query, _ranked(query))[0])
    causal_writer.write_batch([query], [_ranked(query)])
    assert seen and max(seen) < prompt_length


# -- generative: tiny seq2seq LM ------------------------------------------------------------------------


def test_seq2seq_model_works_as_a_writer(tiny_seq2seq_dir):
    writer = build_writer(WriterConfig(kind="generative", model=str(tiny_seq2seq_dir), input_tokens=150, max_new_tokens=5))
    assert writer.is_seq2seq
    ids, evidence = writer.prompt(QUERIES[0], _ranked(QUERIES[0]))
    assert len(ids) <= 150
    assert ids[0] == writer.tokenizer.cls_token_id and ids[-1] == writer.tokenizer.sep_token_id
    decoded = writer.tokenizer.decode(ids, skip_special_tokens=True)
    assert decoded.startswith("question : what about the budget? context :")
    drafts = writer.write_batch(QUERIES, [_ranked(q) for q in QUERIES])
    assert len(drafts) == 3 and all(d.text.strip() for d in drafts)
    starts = [e.segment.start for e in drafts[0].evidence]
    assert starts == sorted(starts)


# -- generative: byte-level tokenizer with a chat template (SmolLM2's kind) -------------------------------


@pytest.fixture(scope="module")
def chat_writer(tiny_bytes_dir):
    return build_writer(WriterConfig(kind="generative", model=str(tiny_bytes_dir), input_tokens=900, max_new_tokens=4))


def test_chat_template_prompt_fits_the_budget(chat_writer):
    writer = chat_writer
    assert writer.tokenizer.chat_template
    for budget in (700, 901, 1200):
        writer.budget = budget
        ids, evidence = writer.prompt(QUERIES[0], _ranked(QUERIES[0]))
        assert len(ids) <= budget
        text = writer.tokenizer.decode(ids)
        assert text.startswith("<s>system\nYou answer questions")
        assert text.endswith("Question: What about the budget?\nAnswer in a few sentences.</s>\n<s>assistant\n")
    writer.budget = 900
    (draft,) = writer.write_batch([QUERIES[0]], [_ranked(QUERIES[0])])
    assert isinstance(draft.text, str)


def test_prompt_is_never_cut_at_the_end_for_multibyte_text(chat_writer):
    writer = chat_writer
    text = "会议决定削减预算并推迟发布日期。" * 40
    evidence = [Evidence(Segment(0, text, 0, len(text)), 1.0)]
    query = "What was decided?"
    try:
        for budget in range(560, 572):
            writer.budget = budget
            ids, chosen = writer.prompt(query, evidence)
            assert len(ids) <= budget
            assert ids == writer._prompt_ids("\n".join(e.segment.text for e in chosen), query), budget
    finally:
        writer.budget = 900

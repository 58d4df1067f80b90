"""The pipeline: configs, packaged names, summarize, save/load round trip, model resolution."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import MEETING_B, PLAIN_TEXT

from qfsum import Pipeline, PipelineConfig, QfsumError
from qfsum.assets import resolve
from qfsum.retrieval import ScorerConfig
from qfsum.writers import WriterConfig
from qfsum.pipeline import load_config, packaged_pipelines, summarize_each
from qfsum.readers import document_from_text, qmsum_document
from qfsum.retrieval import ScorerConfig
from qfsum.segment import SegmenterConfig

PACKAGED = ["default", "extractive", "extractive-bm25", "extractive-dense", "extractive-lead", "quality"]


def bm25_pipeline(**writer) -> Pipeline:
    return Pipeline(
        PipelineConfig(
            name="test-bm25",
            scorer=ScorerConfig(kind="bm25"),
            writer=WriterConfig(**{"kind": "extractive", "summary_words": 30, **writer}),
        )
    )


# -- configs ---------------------------------------------------------------------------------------


def test_packaged_pipelines_are_listed_and_parse():
    assert packaged_pipelines() == PACKAGED
    default = load_config("default")
    assert default.name == "default"
    assert (default.scorer.kind, default.scorer.model) == ("hybrid", "minilm-dpr-qmsum")
    assert (default.segmenter.kind, default.segmenter.size, default.segmenter.tokenizer) == ("window", 256, "minilm")
    assert (default.writer.kind, default.writer.model, default.writer.input_tokens) == ("generative", "smollm2-qmsum-windows", 1024)
    assert load_config("extractive-bm25").scorer.kind == "bm25"
    assert load_config("extractive-lead").writer.summary_words == 100
    quality = load_config("quality")  # default's evidence, the larger writer on the fast runtime
    assert (quality.segmenter, quality.scorer) == (default.segmenter, default.scorer)
    assert (quality.writer.model, quality.writer.runtime, quality.writer.dtype) == ("qwen2.5-coder-1.5b", "onnxruntime-genai", "int4")
    assert quality.writer.grounded_numbers and quality.writer.grounded_names
    assert "make install-qwen15" in quality.description


@pytest.mark.parametrize("name", ["no-such-pipeline", "../pipelines/default", "default.json", ""])
def test_unknown_pipeline_names(name):
    with pytest.raises(QfsumError, match="unknown pipeline|not a pipeline directory"):
        Pipeline.load(name)


def test_unknown_pipeline_message_lists_the_packaged_ones():
    with pytest.raises(QfsumError) as info:
        load_config("nope")
    assert all(name in str(info.value) for name in PACKAGED)


def test_config_round_trip_through_dict():
    config = PipelineConfig(
        name="x",
        segmenter=SegmenterConfig(kind="window", size=64, stride=16),
        scorer=ScorerConfig(kind="lead"),
        writer=WriterConfig(kind="extractive", summary_words=12),
    )
    again = PipelineConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


@pytest.mark.parametrize(
    "data, message",
    [
        ({"writer": {"kind": "extractive", "temperature": 0.7}}, "invalid pipeline config"),
        ({"segmenter": "turn"}, "invalid pipeline config"),
        ({"segmenter": {"kind": "paragraph"}}, "unknown segmenter"),
        ({"writer": {"kind": "magic"}}, "unknown writer"),
    ],
)
def test_invalid_configs(data, message):
    with pytest.raises(QfsumError, match=message):
        PipelineConfig.from_dict(data)


def test_load_config_from_directory_and_file_errors(tmp_path):
    with pytest.raises(QfsumError, match="not a pipeline directory"):
        load_config(tmp_path)
    (tmp_path / "pipeline.json").write_text("{not json")
    with pytest.raises(QfsumError, match="pipeline config: malformed JSON"):
        load_config(tmp_path)
    (tmp_path / "pipeline.json").write_text("[1, 2]")
    with pytest.raises(QfsumError, match="must be a JSON object"):
        load_config(tmp_path / "pipeline.json")
    (tmp_path / "pipeline.json").write_text(json.dumps({"name": "mine", "scorer": {"kind": "lead"}}))
    assert load_config(tmp_path / "pipeline.json").name == "mine"


def test_unknown_scorer_kind_in_config():
    with pytest.raises(QfsumError, match="unknown scorer"):
        Pipeline(PipelineConfig.from_dict({"scorer": {"kind": "tfidf"}, "writer": {"kind": "extractive"}}))


def test_unknown_models_raise_qfsum_error():
    with pytest.raises(QfsumError, match="unknown model 'no-such-model'"):
        Pipeline(PipelineConfig.from_dict({"scorer": {"kind": "bm25"}, "writer": {"kind": "generative", "model": "no-such-model"}}))
    with pytest.raises(QfsumError, match="unknown model 'no-such-encoder'"):
        Pipeline(PipelineConfig.from_dict({"scorer": {"kind": "dense", "model": "no-such-encoder"}}))


# -- model resolution ---------------------------------------------------------------------------------


def test_resolve_model_names(tmp_path):
    minilm = resolve("minilm")
    assert minilm.gguf_file is None and (minilm.location.endswith("model"))
    smollm2 = resolve("smollm2")
    assert smollm2.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert resolve(str(tmp_path)).location == str(tmp_path.resolve())
    assert resolve("someone/some-model").location == "someone/some-model"  # a hub id, resolved lazily
    file = tmp_path / "weights.bin"
    file.write_bytes(b"x")
    with pytest.raises(QfsumError, match="expected a directory, got a file"):
        resolve(str(file))
    for bad in ["no-such-model", "./not/here", "/not/here/either"]:
        with pytest.raises(QfsumError, match="unknown model"):
            resolve(bad)


def test_hub_id_that_cannot_be_loaded_offline_is_a_qfsum_error(monkeypatch):
    from qfsum.assets import load_tokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(QfsumError, match="cannot load model 'nobody/no-such-model-xyz'"):
        load_tokenizer("nobody/no-such-model-xyz")


# -- summarizing -----------------------------------------------------------------------------------------


def test_summarize_text_returns_summary_with_evidence_and_timings():
    pipeline = bm25_pipeline()
    summary = pipeline.summarize(PLAIN_TEXT, "What happened to the bridge budget?")
    assert summary.query == "What happened to the bridge budget?"
    assert "bridge was cut by ten percent" in summary.text
    assert summary.evidence and len(summary.text.split()) <= 30
    document = document_from_text(PLAIN_TEXT)
    for item in summary.evidence:
        assert document.text[item.segment.start : item.segment.end] == item.segment.text
    assert set(summary.timings) == {"segment_ms", "score_ms", "write_ms", "ground_ms", "total_ms"}
    assert summary.timings["total_ms"] == pytest.approx(sum(v for k, v in summary.timings.items() if k != "total_ms"))
    data = summary.to_dict()
    assert set(data) == {"query", "summary", "sentences", "evidence", "timings"}
    assert set(data["evidence"][0]) == {"segment", "score", "start", "end", "text"}
    for sentence in data["sentences"]:  # extractive: each sentence is evidence text, so it cites it
        assert data["summary"][sentence["start"] : sentence["end"]] == sentence["text"]
        assert sentence["supported"] and sentence["citations"]
        cited = data["evidence"][sentence["citations"][0]]["text"]
        assert set(sentence["text"].lower().split()) <= set(cited.lower().split())
        quote = document.text[sentence["quote"]["start"] : sentence["quote"]["end"]]  # the sentence it comes from
        assert quote.strip() and set(sentence["text"].lower().split()) <= set(quote.lower().split())


def test_summarize_many_segments_once_and_answers_in_order(monkeypatch):
    pipeline = bm25_pipeline()
    calls = []
    original = pipeline.segmenter
    monkeypatch.setattr(pipeline, "segmenter", lambda doc: calls.append(doc.id) or original(doc))
    document = qmsum_document(MEETING_B, "b")
    queries = ["voice recognition", "rubber case", "young people survey"]
    summaries = pipeline.summarize_many(document, queries)
    assert [s.query for s in summaries] == queries
    assert calls == ["b"]
    assert "voice recognition" in summaries[0].text
    assert "rubber" in summaries[1].text
    assert "survey" in summaries[2].text


def test_summarize_batch_mixes_documents():
    pipeline = bm25_pipeline()
    meeting = qmsum_document(MEETING_B, "b")
    out = pipeline.summarize_batch([(meeting, "rubber"), (PLAIN_TEXT, "library report")])
    assert "rubber" in out[0].text and "library report" in out[1].text


@pytest.mark.parametrize("query", ["", "   \n"])
def test_empty_query_is_an_error(query):
    with pytest.raises(QfsumError, match="the query is empty"):
        bm25_pipeline().summarize(PLAIN_TEXT, query)


def test_empty_document_is_an_error():
    with pytest.raises(QfsumError, match="the document is empty"):
        bm25_pipeline().summarize("  \n ", "budget")


def test_rank_gives_every_segment_best_first():
    pipeline = bm25_pipeline()
    document = qmsum_document(MEETING_B, "b")
    ranked = pipeline.rank(document, "rubber case")
    assert len(ranked) == 6
    assert "rubber" in ranked[0].segment.text
    assert [e.score for e in ranked] == sorted((e.score for e in ranked), reverse=True)


# -- save / load round trip with the tiny generative model ----------------------------------------------


def test_save_and_load_round_trip_with_a_generative_model(tmp_path, tiny_causal_dir):
    model = tmp_path / "my-model"
    shutil.copytree(tiny_causal_dir, model)
    config = PipelineConfig(
        name="tiny",
        description="tiny generative pipeline",
        segmenter=SegmenterConfig(kind="sentence"),
        scorer=ScorerConfig(kind="bm25"),
        writer=WriterConfig(kind="generative", model=str(model), input_tokens=128, max_new_tokens=6),
    )
    pipeline = Pipeline(config)
    document = qmsum_document(MEETING_B, "b")
    queries = ["What about voice recognition?", "Why rubber?"]
    before = pipeline.summarize_many(document, queries)

    saved = pipeline.save(tmp_path / "saved")
    data = json.loads((saved / "pipeline.json").read_text())
    assert data["writer"]["model"] == "models/writer"
    assert data["scorer"]["model"] == "minilm"  # not a directory: left as is
    assert sorted(p.name for p in (saved / "models" / "writer").iterdir()) == sorted(p.name for p in model.iterdir())
    shutil.rmtree(model)  # the saved pipeline must not need the original folder

    loaded = Pipeline.load(saved)
    assert loaded.config.writer.model == str((saved / "models" / "writer").resolve())
    assert loaded.config.segmenter == config.segmenter and loaded.config.scorer == config.scorer
    assert loaded.config.name == "tiny"
    after = loaded.summarize_many(document, queries)
    assert [s.text for s in after] == [s.text for s in before]
    assert all(s.text for s in after)
    assert [[e.to_dict() for e in s.evidence] for s in after] == [[e.to_dict() for e in s.evidence] for s in before]

    # saving a loaded pipeline into its own directory keeps it loadable
    loaded.save(saved)
    assert [s.text for s in Pipeline.load(saved).summarize_many(document, queries)] == [s.text for s in before]


def test_saved_pipeline_with_unknown_model(tmp_path):
    (tmp_path / "pipeline.json").write_text(
        json.dumps({"scorer": {"kind": "bm25"}, "writer": {"kind": "generative", "model": "no-such-model"}})
    )
    with pytest.raises(QfsumError, match="unknown model 'no-such-model'"):
        Pipeline.load(tmp_path)


def test_saved_pipeline_with_missing_model_folder(tmp_path):
    (tmp_path / "pipeline.json").write_text(
        json.dumps({"scorer": {"kind": "bm25"}, "writer": {"kind": "generative", "model": "models/writer"}})
    )
    with pytest.raises(QfsumError) as info:
        Pipeline.load(tmp_path)
    assert "huggingface.co" not in str(info.value)
    assert str(tmp_path / "models" / "writer") in str(info.value)


def test_unreachable_hub_model_is_a_one_line_user_error(tmp_path):
    """A hub id that is neither cached nor downloadable fails with QfsumError, not a library traceback."""
    (tmp_path / "pipeline.json").write_text(
        json.dumps({"scorer": {"kind": "bm25"}, "writer": {"kind": "generative", "model": "qfsum-tests/no-such-model"}})
    )
    with pytest.raises(QfsumError, match="no-such-model"):
        Pipeline.load(tmp_path)


def test_a_pipeline_file_with_the_old_budget_key_loads_in_its_writers_unit(tmp_path):
    old = {"writer": {"kind": "extractive", "budget": 40}}
    assert PipelineConfig.from_dict(old).writer.summary_words == 40
    old = {"writer": {"kind": "generative", "model": "smollm2", "budget": 512}}
    assert PipelineConfig.from_dict(old).writer.input_tokens == 512


def test_a_writer_refuses_the_other_kinds_unit():
    with pytest.raises(QfsumError, match="summary_words, not input_tokens"):
        WriterConfig(kind="extractive", input_tokens=100)
    with pytest.raises(QfsumError, match="summary_words must be >= 1"):
        WriterConfig(kind="generative", model="smollm2", summary_words=0)


def test_a_model_writer_s_answer_length_in_words_sets_its_token_limit():
    assert WriterConfig(kind="generative", model="smollm2", max_new_tokens=120).new_tokens() == 120
    assert WriterConfig(kind="generative", model="smollm2", summary_words=200).new_tokens() == 300


def test_summarize_each_isolates_the_failing_item():
    calls = []

    def summarize_batch(items):
        calls.append(len(items))
        if any(query == "bad" for _, query in items):
            raise TypeError("the tokenizer choked")
        return [f"answer to {query}" for _, query in items]

    results = summarize_each(summarize_batch, [("doc", "a"), ("doc", "bad"), ("doc", "b")])
    assert results[0] == "answer to a" and results[2] == "answer to b"
    assert isinstance(results[1], TypeError)
    assert calls == [3, 1, 1, 1]  # the batch once, then each item alone
    assert summarize_each(summarize_batch, [("doc", "a"), ("doc", "b")]) == ["answer to a", "answer to b"]


def _draft(text: str, evidence: list[str]):
    from qfsum.document import Draft, Evidence, Segment

    return Draft(text, [Evidence(Segment(i, t, 0, len(t)), float(len(evidence) - i)) for i, t in enumerate(evidence)])


def test_strict_grounding_drops_exactly_the_unsupported_sentences():
    from qfsum.pipeline import ground

    draft = _draft("The overrun is 120,000 euros. It was 1.3 million. They will apply to the heritage fund.",
                   ["Ann: the overrun is 120,000 euros.", "Bob: we apply to the heritage fund."])
    text, sentences, note = ground(draft, "strict")
    assert text == "The overrun is 120,000 euros. They will apply to the heritage fund."
    assert [s.citations for s in sentences] == [[0], [1]] and note == "strict grounding dropped 1 unsupported sentence"
    flagged, sentences, _ = ground(draft, "flag")
    assert flagged == draft.text and [s.support >= 0.5 for s in sentences] == [True, False, True]
    assert ground(draft, "off") == (draft.text, [], None)


def test_strict_grounding_with_nothing_supported_answers_with_the_best_evidence():
    from qfsum.pipeline import ground

    evidence = ["Ann: the roof costs 265,000. The weather was fine.", "Bob: later. The roof needs new beams."]
    text, sentences, note = ground(_draft("The moon is cheese.", evidence), "strict", query="What about the roof?")
    assert text == "Ann: the roof costs 265,000. The roof needs new beams." and "best evidence instead" in note
    assert all(s.support >= 0.5 for s in sentences)  # quoted evidence supports itself


def test_the_best_evidence_sentences_keep_to_their_word_budget_and_order():
    from qfsum.pipeline import best_evidence_sentences

    evidence = ["The budget is 1.3 million. Lunch was late.", "The budget overrun is 120,000 euros."]
    assert best_evidence_sentences("What is the budget overrun?", evidence, 6) == "The budget overrun is 120,000 euros."
    assert best_evidence_sentences("What is the budget overrun?", evidence, 11) == (
        "The budget is 1.3 million. The budget overrun is 120,000 euros.")
    assert best_evidence_sentences("anything", [], 10) == ""


def test_unknown_grounding_mode_is_an_error():
    with pytest.raises(QfsumError, match="grounding must be one of"):
        PipelineConfig(grounding="sometimes")


def test_off_topic_questions_are_flagged_and_strict_mode_does_not_answer_them():
    from qfsum.pipeline import ground, off_topic_note

    note = off_topic_note(0.06, 0.25)
    assert note and "does not seem to answer" in note and "0.06" in note
    assert off_topic_note(0.4, 0.25) is None and off_topic_note(None, 0.25) is None and off_topic_note(0.1, None) is None
    draft = _draft("The overrun is 120,000 euros.", ["Ann: the overrun is 120,000 euros."])
    text, sentences, flagged = ground(draft, "flag", off_topic=note)
    assert text == draft.text and sentences and flagged == note
    assert ground(draft, "strict", off_topic=note) == ("", [], note)


def test_a_pipeline_with_a_dense_scorer_measures_relevance(tiny_bert_dir):
    config = PipelineConfig(scorer=ScorerConfig(kind="hybrid", model=str(tiny_bert_dir)), off_topic_below=1.01)
    summary = Pipeline(config).summarize(PLAIN_TEXT, "What happened to the bridge budget?")
    assert summary.relevance is not None and -1.0 <= summary.relevance <= 1.0 + 1e-6
    assert "does not seem to answer" in summary.note  # no cosine reaches 1.01
    assert summary.to_dict()["relevance"] == round(summary.relevance, 4)
    general = Pipeline(config).summarize(PLAIN_TEXT, "Summarize the whole document.")
    assert general.relevance is None and general.note is None  # about the document as a whole: never off-topic


@pytest.mark.parametrize("query, topical", [
    ("Summarize the whole meeting.", False),
    ("What were the main discussion points of the meeting?", False),
    ("Summarize the discussion about finance.", True),
    ("What is the capital of Australia?", True),
])
def test_only_a_question_that_names_a_topic_can_be_off_topic(query, topical):
    from qfsum.pipeline import names_a_topic

    assert names_a_topic(query) is topical


def test_unknown_support_scorer_is_a_one_line_error(tmp_path):
    with pytest.raises(QfsumError):
        Pipeline(PipelineConfig(support=str(tmp_path / "no-such-model")))

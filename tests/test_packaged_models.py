"""The real packaged models (SmolLM2 via GGUF, MiniLM). Slow: deselect with -m 'not slow'.

The SmolLM2 GGUF is dequantized once and cached under $QFSUM_CACHE (default ~/.cache/qfsum);
these tests leave that default alone so later runs reuse the cache.
"""

from __future__ import annotations

import json

import pytest
from conftest import cli

from qfsum import Pipeline
from qfsum.readers import document_from_text

pytestmark = pytest.mark.slow

DOCUMENT = (
    "The committee met on Tuesday to review the new library project.\n\n"
    "The architect reported that the roof repairs will cost forty thousand pounds, "
    "ten thousand more than planned, because the old beams are rotten.\n\n"
    "The treasurer said the council will pay the extra cost from the reserve fund.\n\n"
    "The reading room will close in March and a temporary study space will open in the town hall.\n\n"
    "The next meeting is on the first Monday of April."
)
QUERY = "What did the committee decide about the extra cost of the roof repairs?"


@pytest.fixture(scope="module")
def default_pipeline():
    pipeline = Pipeline.load("default")
    assert (pipeline.config.writer.kind, pipeline.config.writer.model) == ("generative", "smollm2-qmsum-windows")
    return pipeline


def test_default_pipeline_summarizes_with_evidence(default_pipeline):
    document = document_from_text(DOCUMENT, "library")
    summary = default_pipeline.summarize(document, QUERY)
    assert summary.text.strip()
    assert len(summary.text) < 2000
    assert summary.evidence
    for item in summary.evidence:
        assert document.text[item.segment.start : item.segment.end] == item.segment.text
    starts = [e.segment.start for e in summary.evidence]
    assert starts == sorted(starts)
    # the short document fits the 1024-token budget whole: every segment is evidence
    assert len(summary.evidence) == len(default_pipeline.segmenter(document))
    assert summary.timings["write_ms"] > 0


def test_default_answers_do_not_depend_on_the_batch_the_thread_count_or_the_runtime(default_pipeline):
    """What one user gets alone is what a busy server (a batch of other people's questions) and `qfsum
    evaluate` (batches of 4) give, with any thread count, on ONNX Runtime GenAI (runtime auto, where it
    is installed) and on torch: the default writer decodes in float32. In bf16 greedy decoding turns
    rounding differences into other words (11 of 12 val answers changed between batches of 1 and 4,
    docs/faithfulness.md)."""
    from dataclasses import replace

    import torch

    document = document_from_text("\n\n".join([DOCUMENT] * 6), "long")
    queries = [QUERY, "When will the reading room close?", "What will the roof repairs cost, and why that much?",
               "When is the next meeting?"]  # prompts of different lengths: each row of the batch is padded
    together = [s.text for s in default_pipeline.summarize_many(document, queries)]
    alone = [default_pipeline.summarize(document, q).text for q in queries]
    assert together == alone
    config = default_pipeline.config
    on_torch = Pipeline(replace(config, writer=replace(config.writer, runtime="torch")))
    assert [s.text for s in on_torch.summarize_many(document, queries)] == together
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2 if threads == 1 else 1)
        _forget_converted_models()  # a fast runtime takes torch's thread count when its model loads
        other_threads = Pipeline(config)
        if other_threads.writer.runtime != "torch":
            assert other_threads.writer.model.threads == torch.get_num_threads() != default_pipeline.writer.model.threads
        assert [s.text for s in other_threads.summarize_many(document, queries)] == together
    finally:
        torch.set_num_threads(threads)
        _forget_converted_models()


def _forget_converted_models() -> None:
    import sys

    if "qfsum.writers.ortgenai_runtime" in sys.modules:
        sys.modules["qfsum.writers.ortgenai_runtime"].load_ortgenai.cache_clear()


def test_default_pipeline_prompt_uses_the_chat_template_within_budget(default_pipeline):
    writer = default_pipeline.writer
    assert writer.budget == 1024 and writer.tokenizer.chat_template
    document = document_from_text("\n\n".join([DOCUMENT] * 30), "long")
    ranked = default_pipeline.rank(document, QUERY)
    ids, evidence = writer.prompt(QUERY, ranked)
    assert 900 < len(ids) <= 1024  # filled, never over
    assert len(evidence) < len(ranked)
    text = writer.tokenizer.decode(ids)
    assert QUERY in text
    assert text.rstrip().endswith("assistant")  # the generation cue is intact


def test_extractive_pipeline_hybrid_minilm(capsys, tmp_path):
    path = tmp_path / "library.txt"
    path.write_text(DOCUMENT)
    code, out, err = cli(capsys, "summarize", path, "-q", "How much will fixing the roof cost?", "-p", "extractive", "--json")
    assert code == 0, err
    (item,) = json.loads(out)
    assert "forty thousand pounds" in item["summary"]
    assert len(item["summary"].split()) <= 100
    for evidence in item["evidence"]:
        assert DOCUMENT[evidence["start"] : evidence["end"]] == evidence["text"]
    pipeline = Pipeline.load("extractive")
    assert type(pipeline.scorer).__name__ == "HybridScorer"
    ranked = pipeline.rank(document_from_text(DOCUMENT), "When does the reading room close?")
    assert "reading room will close in March" in ranked[0].segment.text

"""Answers nobody waits for any more stop being decoded; the answers still wanted are unchanged.

Tiny random models (conftest) write until their length limit, so an answer that stops early is
visibly shorter. The length is counted in model steps and in streamed text, never in time.
"""

from __future__ import annotations

import pytest

from qfsum.document import Document, Evidence, Segment
from qfsum.errors import QfsumError
from qfsum.pipeline import Summary, summarize_each
from qfsum.writers import WriterConfig, build_writer
from qfsum.writers.wanted import for_positions, unwanted_rows

QUERIES = ["What was cut?", "By how much?", "Who paid?"]
RANKED = [[Evidence(Segment(i, f"the bridge budget was cut by {i}0 percent in march", 0, 40), 1.0) for i in range(2)]] * 3
NEW_TOKENS = 16


def _write(writer, wanted=None, heard=None) -> tuple[list[str], list[str], int]:
    """(drafts, streamed raw text per answer, forward passes of the model) of one batch; `heard(i)` is
    called with each piece's position."""
    streamed = [""] * len(QUERIES)

    def on_text(i: int, text: str) -> None:
        streamed[i] += text
        if heard is not None:
            heard(i)

    model = writer.model.get_base_model() if hasattr(writer.model, "get_base_model") else writer.model
    steps = []
    hook = model.register_forward_hook(lambda *_: steps.append(1))
    try:
        drafts = writer.write_batch(QUERIES, RANKED, on_text=on_text, wanted=wanted)
    finally:
        hook.remove()
    return [d.text for d in drafts], streamed, len(steps)


@pytest.mark.parametrize("decoding", ["greedy", "lookahead"])
def test_an_unwanted_answer_stops_and_its_batch_mates_are_unchanged(tiny_causal_dir, decoding):
    writer = build_writer(WriterConfig(kind="generative", model=str(tiny_causal_dir), max_new_tokens=NEW_TOKENS,
                                       dtype="float32", decoding=decoding, batch_size=4))
    drafts, streamed, _ = _write(writer)
    asked = set()

    def wanted(i: int) -> bool:
        asked.add(i)
        return i != 1

    partial_drafts, partial_streamed, _ = _write(writer, wanted)
    assert asked == {0, 1, 2}
    assert [partial_drafts[0], partial_drafts[2]] == [drafts[0], drafts[2]]
    assert [partial_streamed[0], partial_streamed[2]] == [streamed[0], streamed[2]]
    assert len(partial_streamed[1].split()) < len(streamed[1].split()) // 2  # it stopped at once


@pytest.mark.parametrize("decoding", ["greedy", "lookahead"])
def test_a_batch_nobody_wants_any_more_ends_and_one_nobody_wanted_never_starts(tiny_causal_dir, decoding):
    writer = build_writer(WriterConfig(kind="generative", model=str(tiny_causal_dir), max_new_tokens=NEW_TOKENS,
                                       dtype="float32", decoding=decoding, batch_size=4))
    _, _, steps = _write(writer)
    gone = []  # every client leaves once the first piece of text has reached one of them
    _, streamed, left_steps = _write(writer, lambda i: not gone, heard=gone.append)
    assert steps >= 8 and 1 <= left_steps <= steps // 2 and any(streamed)
    assert _write(writer, lambda i: False)[2] == 0  # nobody waited from the start: not even a prefill


@pytest.mark.parametrize("kind", ["generative", "bart"])
def test_a_seq2seq_writer_stops_unwanted_answers_too(tiny_seq2seq_dir, kind):
    writer = build_writer(WriterConfig(kind=kind, model=str(tiny_seq2seq_dir), max_new_tokens=NEW_TOKENS,
                                       num_beams=1, dtype="float32"))
    drafts, streamed, steps = _write(writer)
    partial_drafts, partial_streamed, _ = _write(writer, lambda i: i != 0)
    assert partial_drafts[1:] == drafts[1:] and partial_streamed[1:] == streamed[1:]
    assert len(partial_streamed[0]) < len(streamed[0])
    _, _, unwanted_steps = _write(writer, lambda i: False)
    assert unwanted_steps < steps


def test_the_extractive_writer_takes_wanted_and_ignores_it():
    writer = build_writer(WriterConfig(kind="extractive"))
    assert [d.text for d in writer.write_batch(QUERIES, RANKED, wanted=lambda i: False)] == \
           [d.text for d in writer.write_batch(QUERIES, RANKED)]


def test_a_failing_predicate_counts_as_wanted_and_positions_map_to_the_whole_batch():
    def broken(i: int) -> bool:
        raise RuntimeError("no")

    assert unwanted_rows(broken, 3) == set()
    assert unwanted_rows(for_positions(lambda p: p != 7, [5, 7, 9]), 3) == {1}
    assert for_positions(None, [1]) is None


def test_after_a_failed_batch_only_the_wanted_items_are_retried_alone():
    calls = []

    def run_batch(items, wanted=None):
        calls.append([q for _, q in items])
        if len(items) > 1:
            raise RuntimeError("a bug somewhere in the batch")
        return [Summary(q, q.upper(), [], {}) for _, q in items]

    document = Document("text", [], "d")
    results = summarize_each(run_batch, [(document, "a"), (document, "b"), (document, "c")],
                             wanted=lambda i: i != 1)
    assert calls == [["a", "b", "c"], ["a"], ["c"]]
    assert [r.text for r in (results[0], results[2])] == ["A", "C"]
    assert isinstance(results[1], QfsumError)


def test_the_pipeline_passes_wanted_to_its_writer(tiny_causal_dir):
    from qfsum.pipeline import Pipeline, PipelineConfig
    from qfsum.retrieval import ScorerConfig

    pipeline = Pipeline(PipelineConfig(scorer=ScorerConfig(kind="bm25"), grounding="off", writer=WriterConfig(
        kind="generative", model=str(tiny_causal_dir), input_tokens=200, max_new_tokens=NEW_TOKENS, dtype="float32")))
    document = "The bridge budget was cut by 120,000 euros. The council met in March. Anna paid for the roof."
    items = [(document, q) for q in QUERIES]
    streamed = [""] * len(items)
    full = pipeline.summarize_batch(items, on_text=lambda i, t: streamed.__setitem__(i, streamed[i] + t))
    cut = [""] * len(items)
    partial = pipeline.summarize_batch(items, on_text=lambda i, t: cut.__setitem__(i, cut[i] + t),
                                       wanted=lambda i: i != 2)
    assert [s.text for s in partial[:2]] == [s.text for s in full[:2]] and cut[:2] == streamed[:2]
    assert len(cut[2].split()) < len(streamed[2].split()) // 2

"""One prompt for the causal writer: the prompt a model is trained on (`training.writer.taskdata`)
is, token for token, the prompt the generative writer serves it (`writers.generative`), with and
without a chat template."""

from __future__ import annotations

import pytest

from qfsum.assets import load_generator_uncached
from qfsum.readers import document_from_text
from qfsum.retrieval import rank
from qfsum.retrieval.lexical import BM25Scorer
from qfsum.segment import Segmenter
from qfsum.training.writer.taskdata import IGNORE, TaskExample, encode
from qfsum.writers import Evidence, WriterConfig, build_writer

DOCUMENT = document_from_text(
    "Alice: The budget for the remote is twelve euros and fifty cents.\n"
    "Bob: We decided to drop voice recognition, it costs too much.\n"
    "Carol: The case will be yellow, with a rubber feel.\n"
    "Alice: Next meeting is on Tuesday; Bob brings the prototype.\n"
    "Bob: Café prices went up, so lunch is on the company — 日本 style bento.\n"
)
QUERIES = ["What did they decide about voice recognition?", "When is the next meeting?", "Budget?"]


def _ranked(query: str) -> list[Evidence]:
    segments = Segmenter()(DOCUMENT)
    scores = BM25Scorer().score(query, segments)
    return [Evidence(segments[i], float(scores[i])) for i in rank(scores)]


def _training_prompt(tokenizer, query: str, passage: str, max_prompt: int) -> list[int]:
    """The prompt part of a training row: the ids whose labels the loss ignores."""
    row = encode(tokenizer, TaskExample("x", query, passage, "An answer."), max_prompt=max_prompt)
    return [i for i, label in zip(row["input_ids"], row["labels"]) if label == IGNORE]


@pytest.mark.parametrize("model", ["tiny_causal_dir", "tiny_bytes_dir"])  # WordPiece, no chat template; bytes, chat template
def test_training_prompt_is_the_serving_prompt(model, request):
    directory = str(request.getfixturevalue(model))
    budget = 400
    writer = build_writer(WriterConfig(kind="generative", model=directory, input_tokens=budget, max_new_tokens=4))
    _, tokenizer = load_generator_uncached(directory, "float32")  # as training loads it (sft.load_trainable)
    assert bool(getattr(tokenizer, "chat_template", None)) == (model == "tiny_bytes_dir")
    for query in QUERIES:
        served, evidence = writer.prompt(query, _ranked(query))
        passage = "\n".join(e.segment.text for e in evidence)
        assert evidence and _training_prompt(tokenizer, query, passage, budget) == served

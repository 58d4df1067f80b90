"""`qfsum bench serve`'s short-passage requests and its in-process Python API mode (the HTTP modes start
real servers and are run as a benchmark, not here)."""

import argparse
import json

import pytest

from qfsum.bench.serve import MODES, bench_serve, measure_python, payloads
from qfsum.errors import QfsumError


def _examples(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


RECORDS = [
    {"id": "m1", "query": "What about the roof?", "spans": [[1, 2]],
     "segments": [{"speaker": "A", "text": "Hello all."},
                  {"speaker": "B", "text": "The roof leaks in three places and costs 4,000 euros to fix."},
                  {"speaker": "C", "text": "We agreed to fix the roof in May."},
                  {"speaker": "A", "text": "Next item."}]},
    {"id": "m2", "query": "What about lunch?", "segments": ["No spans here."]},
]


def test_short_passages_take_the_first_words_of_the_gold_spans_and_skip_examples_without(tmp_path):
    bodies = payloads(_examples(tmp_path / "ex.jsonl", RECORDS), passage_words=8)
    assert bodies == [{"document": "B: The roof leaks in three places and", "queries": ["What about the roof?"]}]
    whole = payloads(str(tmp_path / "ex.jsonl"), passage_words=100)[0]["document"]
    assert whole.split("\n\n") == ["B: The roof leaks in three places and costs 4,000 euros to fix.",
                                   "C: We agreed to fix the roof in May."]


def test_short_passages_without_any_spans_say_so(tmp_path):
    with pytest.raises(QfsumError, match="no example with gold evidence spans"):
        payloads(_examples(tmp_path / "ex.jsonl", RECORDS[1:]), passage_words=8)


def _args(**kw):
    defaults = dict(duration=30.0, requests=5, threads="1", modes="python", passage_words=None, split=None,
                    clients="2", pipelines="extractive-bm25", data="", max_batch_size=16, max_queue=256, deadline=60.0)
    return argparse.Namespace(**{**defaults, **kw})


def test_python_mode_answers_every_request_in_batches():
    bodies = [{"document": "The roof leaks. We fix it in May.\n\nLunch is at noon.", "queries": ["When is the roof fixed?"]},
              {"segments": ["Budget is tight.", "We cut travel."], "queries": ["What about the budget?"]}]
    point = measure_python("extractive-bm25", 2, _args(), bodies)
    assert (point.mode, point.sent, point.ok) == ("python", 5, 5)
    assert point.mean_batch == pytest.approx(5 / 3)  # 2 + 2 + 1
    assert 0 < point.p50_ms <= point.p99_ms and point.throughput > 0


@pytest.mark.parametrize("bad, message", [({"modes": "fast"}, "--modes must list some of"),
                                          ({"passage_words": 0}, "--passage-words must be >= 1")])
def test_bad_flags_are_one_line_errors(tmp_path, bad, message):
    with pytest.raises(QfsumError, match=message):
        bench_serve(_args(data="examples/meeting.txt", out=str(tmp_path), **bad))
    assert "python" in MODES

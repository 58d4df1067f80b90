"""`qfsum bench serve`'s short-passage requests, its in-process Python API mode and its clients (against an
in-process transport; the HTTP modes start real servers and are run as a benchmark, not here)."""

import argparse
import asyncio
import json

import httpx
import pytest

from qfsum.bench.serve import MODES, Impatience, Point, _load, bench_serve, measure_python, payloads
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
                    clients="2", pipelines="extractive-bm25", data="", max_batch_size=16, max_queue=256, deadline=60.0,
                    abandon_after=None, impatient=None)
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


async def _never_answered(request):
    """A server that never answers: only a hang-up or the end of the point ends a request."""
    await asyncio.Event().wait()


def _load_point(handler, clients, impatience):
    point = Point("p", "batched", clients)
    asyncio.run(_load("http://test", [{"document": "d", "queries": ["q"]}], clients, 0.3, 1000, point,
                      impatience, transport=httpx.MockTransport(handler)))
    return point


def test_impatient_clients_hang_up_and_send_their_next_request_while_patient_ones_wait():
    point = _load_point(_never_answered, 2, Impatience(clients=1, after_s=0.05))
    assert point.abandoned >= 2 and point.ok == 0 and point.errors == {}
    assert point.unfinished == 1  # the patient client still waits when the point ends
    assert point.sent == point.abandoned + 1


def test_without_impatience_nothing_is_abandoned():
    point = _load_point(lambda request: httpx.Response(200, json={}), 2, Impatience())
    assert point.abandoned == 0 and point.ok == point.sent > 0 and point.unfinished == 0


@pytest.mark.parametrize("bad, message", [({"abandon_after": 0.0}, "--abandon-after must be a positive"),
                                          ({"abandon_after": float("nan")}, "--abandon-after must be a positive"),
                                          ({"impatient": 2}, "--impatient needs --abandon-after"),
                                          ({"abandon_after": 5.0}, "applies to the HTTP modes")])
def test_bad_impatience_flags_are_one_line_errors(tmp_path, bad, message):
    with pytest.raises(QfsumError, match=message):
        bench_serve(_args(data="examples/meeting.txt", out=str(tmp_path), **bad))

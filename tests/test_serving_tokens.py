"""Answers as they are written, and their length per request.

- Writers hand each answer's new text to `on_text(i, text)` while they decode (greedy, lookahead,
  seq2seq), in pieces that never split a character and add up to the raw draft.
- `POST /v1/summarize/stream` sends those pieces as `token` lines before each `answer` line, routed to
  their own request when one batch holds several; `options.tokens: false` turns them off; a client that
  hangs up mid-answer costs the rest of its batch nothing.
- `options.words` (and `words=` in Python) sets the answers' length, per request, in one batch too.

Models are tiny and random (conftest); slow steps are gates the test opens, never sleeps.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from conftest import wait_for  # noqa: E402
from qfsum import Pipeline, QfsumError  # noqa: E402
from qfsum.document import Document, Segment  # noqa: E402
from qfsum.pipeline import PipelineConfig, Summary, summarize_each  # noqa: E402
from qfsum.retrieval import ScorerConfig  # noqa: E402
from qfsum.serving import ServerConfig, create_app  # noqa: E402
from qfsum.serving.batcher import MicroBatcher, Token, as_settled  # noqa: E402
from qfsum.serving.models import MAX_WORDS, MIN_WORDS  # noqa: E402
from qfsum.serving.server import serve_in_thread  # noqa: E402
from qfsum.text import complete_sentences  # noqa: E402
from qfsum.writers import Evidence, WriterConfig, build_writer  # noqa: E402
from qfsum.writers.streaming import BatchStreamer, TextDeltas, stable_prefix  # noqa: E402

LIMIT = 60  # seconds: a hang guard, never reached when the code works
STREAM = "/v1/summarize/stream"
TOPICS = ["budget", "rubber case", "voice recognition", "colours", "bridge repairs"]
DOCUMENT = "\n\n".join(f"Paragraph {i} is about the {topic}. It says that item {i} was discussed at length by the team."
                       for i, topic in enumerate(TOPICS * 4))
QUERIES = ["What about the budget?", "Which colours were chosen?", "Was voice recognition kept?"]


def _ranked(count: int = 3) -> list[Evidence]:
    texts = [f"the budget was cut by {i} percent" for i in range(count)]
    return [Evidence(Segment(i, text, 0, len(text)), 1.0) for i, text in enumerate(texts)]


def _collect() -> tuple[dict[int, list[str]], Callable[[int, str], None]]:
    """An `on_text` that keeps each position's pieces."""
    pieces: dict[int, list[str]] = defaultdict(list)
    return pieces, lambda i, text: pieces[i].append(text)


def _tiny_pipeline(model_dir, decoding: str = "greedy", grounding: str = "flag", **writer) -> Pipeline:
    """BM25 + a tiny random causal LM: the generative pipeline's code paths in milliseconds."""
    settings = {"input_tokens": 160, "max_new_tokens": 12, "dtype": "float32", "batch_size": 4, **writer}
    return Pipeline(PipelineConfig(name="tiny", scorer=ScorerConfig(kind="bm25"), grounding=grounding,
                                   writer=WriterConfig(kind="generative", model=str(model_dir), decoding=decoding,
                                                       **settings)))


# -- pieces of text: stable, whole characters, adding up -------------------------------------------------


def test_pieces_never_split_a_character_and_add_up_to_the_decoded_text(tiny_bytes_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bytes_dir)  # one token per UTF-8 byte
    text = "Le café coûte 3 € : 会议决定 ok, naïve résumé."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text)  # multi-byte characters really are several tokens
    pieces: list[str] = []
    deltas = TextDeltas(tokenizer, pieces.append)
    before_end = 0
    for token in ids:
        deltas.push([token])
        before_end = len(pieces)
    deltas.finish()
    assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True) == text
    assert before_end >= 5  # the text came while it was decoded, not at the end
    assert all("\ufffd" not in piece for piece in pieces)  # no half character was ever sent


def test_pieces_are_whole_words_for_a_wordpiece_tokenizer(tiny_causal_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_dir)
    text = "the gobbledygook quibbles snarkily , over flabbergasted zeugmas ."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert any(tokenizer.convert_ids_to_tokens(i).startswith("##") for i in ids)  # words in several tokens
    pieces: list[str] = []
    deltas = TextDeltas(tokenizer, pieces.append)
    for token in ids:
        deltas.push([token])
    deltas.finish()
    final = tokenizer.decode(ids, skip_special_tokens=True)
    assert "".join(pieces) == final
    # a word ("go" of "gobbledygook") is never sent before it is complete
    assert all(set(piece.split()) <= set(final.split()) for piece in pieces)


def test_stable_prefix_holds_back_the_last_word_but_not_cjk():
    assert stable_prefix("the budget wa") == "the budget"
    assert stable_prefix("the budget ") == "the budget"
    assert stable_prefix("one") == ""
    assert stable_prefix("预算被削减") == "预算被削减"


def test_the_batch_streamer_stops_each_row_at_its_end_of_sequence(tiny_causal_dir):
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_dir)
    eos = tokenizer.sep_token_id
    words = tokenizer(["budget cut", "roof"], add_special_tokens=False)["input_ids"]
    pieces, on_text = _collect()
    streamer = BatchStreamer.for_positions(tokenizer, [5, 7], on_text, eos)
    streamer.put(torch.tensor([[1, 2], [3, 4]]))  # the prompt: skipped
    for step in range(3):
        row0 = words[0][step] if step < len(words[0]) else eos
        row1 = words[1][step] if step < len(words[1]) else (eos if step == 1 else tokenizer.pad_token_id)
        streamer.put(torch.tensor([row0, row1]))
    streamer.end()
    assert dict(pieces) == {5: ["budget", " cut"], 7: ["roof"]}


# -- writers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("decoding", ["greedy", "lookahead"])
def test_causal_writer_streams_every_answer_of_a_batch_as_it_decodes(tiny_causal_dir, decoding):
    writer = build_writer(WriterConfig(kind="generative", model=str(tiny_causal_dir), max_new_tokens=12,
                                       dtype="float32", decoding=decoding, batch_size=2))  # 3 queries: 2 calls
    pieces, on_text = _collect()
    drafts = writer.write_batch(QUERIES, [_ranked()] * 3, on_text=on_text)
    assert sorted(pieces) == [0, 1, 2]
    for i, draft in enumerate(drafts):
        assert len(pieces[i]) >= 2  # it grew, piece by piece
        assert complete_sentences("".join(pieces[i]).strip()) == draft.text  # the pieces are the raw draft
    assert [d.text for d in writer.write_batch(QUERIES, [_ranked()] * 3)] == [d.text for d in drafts]  # same answers


def test_lookahead_streams_the_same_text_as_greedy(tiny_causal_dir):
    streamed = {}
    for decoding in ("greedy", "lookahead"):
        writer = build_writer(WriterConfig(kind="generative", model=str(tiny_causal_dir), max_new_tokens=16,
                                           dtype="float32", decoding=decoding, batch_size=3))
        pieces, on_text = _collect()
        writer.write_batch(QUERIES, [_ranked()] * 3, on_text=on_text)
        streamed[decoding] = {i: "".join(p) for i, p in pieces.items()}
    assert streamed["lookahead"] == streamed["greedy"]


@pytest.mark.parametrize("kind", ["generative", "bart"])
def test_seq2seq_writers_stream_too(tiny_seq2seq_dir, kind):
    writer = build_writer(WriterConfig(kind=kind, model=str(tiny_seq2seq_dir), max_new_tokens=8, batch_size=2))
    pieces, on_text = _collect()
    drafts = writer.write_batch(QUERIES, [_ranked()] * 3, on_text=on_text)
    for i, draft in enumerate(drafts):
        assert complete_sentences("".join(pieces[i]).strip()) == draft.text


def test_extractive_and_beam_search_writers_never_call_on_text(tiny_causal_dir):
    calls = []
    extractive = build_writer(WriterConfig(kind="extractive"))
    extractive.write_batch(QUERIES[:1], [_ranked()], on_text=lambda i, t: calls.append(t))
    beams = build_writer(WriterConfig(kind="generative", model=str(tiny_causal_dir), max_new_tokens=4, num_beams=2))
    beams.write_batch(QUERIES[:1], [_ranked()], on_text=lambda i, t: calls.append(t))
    assert calls == []


# -- length per call -------------------------------------------------------------------------------------


def test_words_sets_the_extractive_answer_length_per_item(extractive):
    configured = extractive.config.writer.summary_words
    short = extractive.summarize(DOCUMENT, QUERIES[0], words=12)
    long = extractive.summarize(DOCUMENT, QUERIES[0], words=60)
    default = extractive.summarize(DOCUMENT, QUERIES[0])
    assert 0 < len(short.text.split()) <= 12 < len(long.text.split()) <= 60
    assert len(default.text.split()) > 60  # the pipeline's own 100 words
    mixed = extractive.summarize_batch([(DOCUMENT, QUERIES[0])] * 3, words=[12, None, 60])
    assert [s.text for s in mixed] == [short.text, default.text, long.text]
    assert extractive.config.writer.summary_words == configured  # nothing shared was changed
    with pytest.raises(QfsumError, match="words must be a whole number >= 1"):
        extractive.summarize(DOCUMENT, QUERIES[0], words=0)


def test_words_sets_a_model_writers_length_per_item_in_one_batch(tiny_causal_dir):
    pipeline = _tiny_pipeline(tiny_causal_dir, grounding="off", max_new_tokens=200)
    tokens = pipeline.writer.tokenizer
    length = {w: len(tokens(pipeline.summarize(DOCUMENT, QUERIES[0], words=w).text)["input_ids"]) for w in (10, 40)}
    assert length[10] < length[40]
    singles = [pipeline.summarize(DOCUMENT, q, words=w).text for q, w in zip(QUERIES, (10, 40, None))]
    mixed = pipeline.summarize_many(DOCUMENT, QUERIES, words=[10, 40, None])
    assert [s.text for s in mixed] == singles  # each item its own length, batch-mates unchanged


def test_summarize_hands_on_the_text_of_one_answer(tiny_causal_dir):
    pipeline = _tiny_pipeline(tiny_causal_dir, grounding="off")
    pieces: list[str] = []
    summary = pipeline.summarize(DOCUMENT, QUERIES[0], on_text=pieces.append)
    assert len(pieces) >= 2 and complete_sentences("".join(pieces).strip()) == summary.text


def test_a_failed_batch_is_rerun_alone_without_sending_text_twice():
    pieces, on_text = _collect()
    calls = []

    def summarize_batch(items, words=None, on_text=None):
        calls.append(([q for _, q in items], words, on_text is not None))
        for i, (_, query) in enumerate(items):
            if on_text is not None:
                on_text(i, query)
            if query == "bad":
                raise QfsumError("a bad query")
        return [f"answer to {q}" for _, q in items]

    items = [("doc", "a"), ("doc", "bad"), ("doc", "b")]
    results = summarize_each(summarize_batch, items, words=[10, 20, 30], on_text=on_text)
    assert results[0] == "answer to a" and isinstance(results[1], QfsumError) and results[2] == "answer to b"
    # "a" and "bad" had sent text before the batch failed: re-run without it; "b" had not: it streams alone
    assert calls == [(["a", "bad", "b"], [10, 20, 30], True), (["a"], [10], False), (["bad"], [20], False),
                     (["b"], [30], True)]
    assert dict(pieces) == {0: ["a"], 1: ["bad"], 2: ["b"]}
    assert [type(r) for r in summarize_each(summarize_batch, items[:2], words=[0, 10])] == [QfsumError] * 2


# -- the batcher routes each piece to its own request ----------------------------------------------------


class RecordingRun:
    """A run_batch stub that waits for `gate`, records its keyword arguments, and writes each answer as
    two pieces of text (the query, then " done") before answering."""

    def __init__(self) -> None:
        self.gate, self.entered = threading.Event(), threading.Event()
        self.calls: list[tuple[list[str], dict]] = []

    def __call__(self, pairs, **options):
        self.entered.set()
        self.gate.wait(timeout=LIMIT)
        queries = [q for _, q in pairs]
        self.calls.append((queries, options))
        for i, query in enumerate(queries):
            if "on_text" in options:
                options["on_text"](i, query)
                options["on_text"](i, " done")
        words = options.get("words") or [None] * len(queries)
        return [Summary(q, f"{q} in {w} words", [], {"total_ms": 1.0}) for q, w in zip(queries, words)]


def test_one_batch_carries_each_requests_length_and_routes_text_to_its_own_request():
    doc = Document("text", [], "d")

    async def main():
        run = RecordingRun()
        batcher = MicroBatcher(run, max_wait_s=0.0)
        await batcher.start()
        first = asyncio.create_task(batcher.submit([(doc, "first")], LIMIT))
        while not run.entered.is_set():
            await asyncio.sleep(0.005)
        queues = {name: asyncio.Queue() for name in ("a", "b", "c")}
        broken = queues["c"]

        def fails(k, text):
            raise RuntimeError("a callback that breaks")

        futures = {
            "a": batcher.enqueue([(doc, "a1"), (doc, "a2")], LIMIT, 10, lambda k, t: queues["a"].put_nowait((k, t))),
            "b": batcher.enqueue([(doc, "b1")], LIMIT, 40, lambda k, t: queues["b"].put_nowait((k, t))),
            "c": batcher.enqueue([(doc, "c1")], LIMIT, None, fails),
        }
        run.gate.set()
        await first
        deadline = asyncio.get_running_loop().time() + LIMIT
        outcomes = {}
        for name in ("a", "b"):
            outcomes[name] = [(k, o.text if isinstance(o, Token) else o.summary.text)
                              async for k, o in as_settled(futures[name], deadline, queues[name])]
        outcomes["c"] = [(k, o.summary.text) async for k, o in as_settled(futures["c"], deadline, broken)]
        await batcher.stop()
        return run, outcomes

    run, outcomes = asyncio.run(main())
    (_, plain), (queries, options) = run.calls
    assert set(plain) == {"wanted"}  # no request asked for anything: only the batcher asks who still waits
    assert queries == ["a1", "a2", "b1", "c1"] and options["words"] == [10, 10, 40, None]
    assert outcomes["a"] == [(0, "a1"), (0, " done"), (1, "a2"), (1, " done"), (0, "a1 in 10 words"),
                             (1, "a2 in 10 words")]
    assert outcomes["b"] == [(0, "b1"), (0, " done"), (0, "b1 in 40 words")]
    assert outcomes["c"] == [(0, "c1 in None words")]  # its callback failed: no text, the answer all the same


# -- over HTTP -------------------------------------------------------------------------------------------


def stream_lines(url: str, payload: dict) -> tuple[int, list[dict]]:
    with httpx.stream("POST", f"{url}{STREAM}", json=payload, timeout=LIMIT) as r:
        return r.status_code, [json.loads(line) for line in r.iter_lines() if line]


def request(queries: list[str], document: str = DOCUMENT, **options) -> dict:
    return {"document": document, "queries": queries, "options": options}


def check_tokens_precede_and_add_up_to_each_answer(lines: list[dict], count: int) -> None:
    """Every question has token lines, all before its answer line, adding up to its raw draft."""
    for i in range(count):
        mine = [line for line in lines if line.get("index") == i]
        assert [line["type"] for line in mine][-1] == "answer" and len(mine) >= 3
        assert {line["type"] for line in mine[:-1]} == {"token"}
        assert complete_sentences("".join(line["text"] for line in mine[:-1]).strip()) == mine[-1]["summary"]


@pytest.mark.parametrize("decoding", ["greedy", "lookahead"])
def test_token_lines_come_before_each_answer_and_add_up_to_it(tiny_causal_dir, decoding):
    app = create_app(_tiny_pipeline(tiny_causal_dir, decoding), ServerConfig(max_wait_ms=0))
    with serve_in_thread(app) as url:
        status, lines = stream_lines(url, request(QUERIES))
        info = httpx.get(f"{url}/info", timeout=LIMIT).json()
    assert status == 200 and info["generative"] is True
    check_tokens_precede_and_add_up_to_each_answer(lines, len(QUERIES))
    answers = [line for line in lines if line["type"] == "answer"]
    assert {a["batch_size"] for a in answers} == {3}  # one batch, one generate() call for the three
    assert lines[-1] == {"type": "done", "id": "document", "answered": 3, "failed": 0}


def test_tokens_false_sends_the_answers_alone(tiny_causal_dir):
    app = create_app(_tiny_pipeline(tiny_causal_dir), ServerConfig(max_wait_ms=0))
    with serve_in_thread(app) as url:
        _, quiet = stream_lines(url, request(QUERIES, tokens=False))
        _, chatty = stream_lines(url, request(QUERIES))
    assert [line["type"] for line in quiet] == ["answer"] * 3 + ["done"]
    summaries = {line["index"]: line["summary"] for line in chatty if line["type"] == "answer"}
    assert {line["index"]: line["summary"] for line in quiet if line["type"] == "answer"} == summaries


def test_an_extractive_stream_has_no_token_lines(extractive):
    with serve_in_thread(create_app(extractive, ServerConfig(max_wait_ms=0))) as url:
        status, lines = stream_lines(url, request(QUERIES[:2], tokens=True))
    assert status == 200 and [line["type"] for line in lines] == ["answer", "answer", "done"]


def test_words_sets_the_length_over_http(extractive, tiny_causal_dir):
    def words(url: str, **options) -> list[int]:
        r = httpx.post(f"{url}/v1/summarize", json=request(QUERIES[:1], **options), timeout=LIMIT)
        assert r.status_code == 200, r.text
        _, lines = stream_lines(url, request(QUERIES[:1], **options))
        assert lines[-1]["answered"] == 1
        return [len(r.json()["answers"][0]["summary"].split()), len(lines[-2]["summary"].split())]

    with serve_in_thread(create_app(extractive, ServerConfig(max_wait_ms=0))) as url:
        short, long = words(url, words=12), words(url, words=60)
    assert all(0 < n <= 12 for n in short) and all(12 < n <= 60 for n in long)
    with serve_in_thread(create_app(_tiny_pipeline(tiny_causal_dir, grounding="off", max_new_tokens=200),
                                    ServerConfig(max_wait_ms=0))) as url:
        short, long = words(url, words=10), words(url, words=80)
    assert short[0] == short[1] and long[0] == long[1] and short[0] < long[0]


@pytest.mark.parametrize(("options", "message"), [
    ({"words": MIN_WORDS - 1}, f"options.words: Input should be greater than or equal to {MIN_WORDS}"),
    ({"words": MAX_WORDS + 1}, f"options.words: Input should be less than or equal to {MAX_WORDS}"),
    ({"words": "many"}, "options.words: Input should be a valid integer"),
    ({"words": 20.5}, "options.words: Input should be a valid integer"),
])
def test_bad_words_is_a_one_line_422_on_both_endpoints(extractive, options, message):
    with serve_in_thread(create_app(extractive, ServerConfig(max_wait_ms=0))) as url:
        for path in ("/v1/summarize", STREAM):
            r = httpx.post(f"{url}{path}", json=request(QUERIES[:1], **options), timeout=LIMIT)
            assert r.status_code == 422 and r.headers["content-type"] == "application/json"
            detail = r.json()["detail"]
            assert detail.startswith(message) and "\n" not in detail
        r = httpx.post(f"{url}/v1/summarize", json=request(QUERIES[:1], tokens=False), timeout=LIMIT)
        assert r.status_code == 422 and r.json()["detail"].startswith("options.tokens: Extra inputs")  # stream only


class PausingPipeline:
    """A real pipeline that holds batches with a "hold" question at `gate`, and whose text for a question
    with "pause" in it stops, after the first piece, until `resume` is set."""

    def __init__(self, inner: Pipeline) -> None:
        self.inner, self.config = inner, inner.config
        self.gate, self.entered, self.resume, self.paused = (threading.Event() for _ in range(4))
        self.batches: list[list[str]] = []

    def summarize_batch(self, items, **options):
        queries = [q for _, q in items]
        self.entered.set()
        if any("hold" in q for q in queries):
            self.gate.wait(timeout=LIMIT)
        self.batches.append(queries)
        on_text = options.get("on_text")
        if on_text is not None:
            def relay(i: int, text: str) -> None:
                on_text(i, text)
                if "pause" in queries[i] and not self.paused.is_set():
                    self.paused.set()
                    self.resume.wait(timeout=LIMIT)
            options["on_text"] = relay
        return self.inner.summarize_batch(items, **options)


def test_a_client_that_hangs_up_mid_answer_costs_its_batch_mates_nothing(tiny_causal_dir):
    held = PausingPipeline(_tiny_pipeline(tiny_causal_dir, max_new_tokens=24))
    app = create_app(held, ServerConfig(max_wait_ms=0))
    with serve_in_thread(app) as url, ThreadPoolExecutor(2) as pool:
        blocker = pool.submit(httpx.post, f"{url}/v1/summarize", json=request(["hold: the budget?"]), timeout=LIMIT)
        wait_for(held.entered.is_set)  # the model thread is busy: the next two requests share one batch
        with httpx.stream("POST", f"{url}{STREAM}", json=request(["pause: the budget?"]), timeout=LIMIT) as gone:
            other = pool.submit(stream_lines, url, request(QUERIES[1:]))
            wait_for(lambda: app.state.runner.queue_depth == 3)
            held.gate.set()
            first = json.loads(next(gone.iter_lines()))  # its first piece of text, then it hangs up
        wait_for(lambda: 'route="/v1/summarize/stream"' in httpx.get(f"{url}/metrics", timeout=LIMIT).text)
        held.resume.set()  # the batch goes on after the client left
        status, lines = other.result(timeout=LIMIT)
        assert blocker.result().status_code == 200
    assert first["type"] == "token" and first["index"] == 0 and first["text"]
    assert held.batches == [["hold: the budget?"], ["pause: the budget?", *QUERIES[1:]]]
    assert status == 200 and lines[-1] == {"type": "done", "id": "document", "answered": 2, "failed": 0}
    check_tokens_precede_and_add_up_to_each_answer(lines, 2)
    assert {line["batch_size"] for line in lines if line["type"] == "answer"} == {3}


def test_the_naive_server_streams_tokens_and_takes_words(tiny_causal_dir):
    app = create_app(_tiny_pipeline(tiny_causal_dir), ServerConfig(mode="naive"))
    with serve_in_thread(app) as url:
        status, lines = stream_lines(url, request(QUERIES[:2], words=10))
        r = httpx.post(f"{url}/v1/summarize", json=request(QUERIES[:1], words=10), timeout=LIMIT)
    assert status == 200 and r.status_code == 200
    check_tokens_precede_and_add_up_to_each_answer(lines, 2)


def test_a_pipeline_config_is_not_changed_by_a_request_for_words(tiny_causal_dir):
    pipeline = _tiny_pipeline(tiny_causal_dir)
    before = replace(pipeline.config.writer)
    pipeline.summarize_many(DOCUMENT, QUERIES, words=[10, 40, None])
    assert pipeline.config.writer == before and pipeline.writer.config.summary_words is None

"""`POST /v1/summarize/stream` over real HTTP (uvicorn on loopback): one line per answer as each is
done, a failing question is a line of its own, limits are 4xx before the stream, and a client that
hangs up stops the questions not yet started. Also `GET /info` and the favicon.

Slow work is a gate (an event the test sets), never a sleep: with batches of one, the first question
is answered while the second waits for the gate, so what arrives when does not depend on timing.
"""

from __future__ import annotations

import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from conftest import PLAIN_TEXT, wait_for  # noqa: E402
from qfsum import Pipeline  # noqa: E402
from qfsum.errors import QfsumError  # noqa: E402
from qfsum.serving import ServerConfig, create_app  # noqa: E402
from qfsum.serving.models import MAX_QUERIES, MAX_QUERY_CHARS, MAX_WORDS, MIN_WORDS  # noqa: E402
from qfsum.serving.server import serve_in_thread  # noqa: E402

LIMIT = 60  # seconds: a hang guard, never reached when the server works
STREAM = "/v1/summarize/stream"


class HeldPipeline:
    """A real pipeline whose batches holding a "slow" question wait for `gate`; "boom" raises a TypeError
    (a bug), "unfit" a QfsumError (a question the writer cannot take). Records every batch."""

    def __init__(self, inner: Pipeline, hold_all: bool = False) -> None:
        self.inner, self.config = inner, inner.config
        self.hold_all = hold_all
        self.gate, self.entered = threading.Event(), threading.Event()
        self.batches: list[list[str]] = []

    def summarize_batch(self, items):
        queries = [q for _, q in items]
        self.entered.set()
        if self.hold_all or any("slow" in q for q in queries):
            self.gate.wait(timeout=LIMIT)
        self.batches.append(queries)
        if any("boom" in q for q in queries):
            raise TypeError("an unexpected bug")
        if any("unfit" in q for q in queries):
            raise QfsumError("the question does not fit the writer's input")
        return self.inner.summarize_batch(items)


def request(queries: list[str], document: str = PLAIN_TEXT, **options) -> dict:
    return {"document": document, "queries": queries, "options": options}


def stream_lines(url: str, payload: dict) -> tuple[int, list[dict]]:
    with httpx.stream("POST", f"{url}{STREAM}", json=payload, timeout=LIMIT) as r:
        return r.status_code, [json.loads(line) for line in r.iter_lines() if line]


def test_each_answer_is_a_line_sent_as_soon_as_it_is_done(extractive):
    held = HeldPipeline(extractive)
    app = create_app(held, ServerConfig(max_batch_size=1, max_wait_ms=0))
    with serve_in_thread(app) as url:
        payload = request(["What happened to the bridge budget?", "slow: when does the reading room close?"],
                          include_document=True)
        with httpx.stream("POST", f"{url}{STREAM}", json=payload, timeout=LIMIT) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("application/x-ndjson")
            lines = r.iter_lines()
            document = json.loads(next(lines))
            first = json.loads(next(lines))
            # the first answer arrived while the second question is still held by the gate
            assert not held.gate.is_set() and held.batches == [[payload["queries"][0]]]
            held.gate.set()
            rest = [json.loads(line) for line in lines if line]
    assert document == {"type": "document", "id": "document", "text": PLAIN_TEXT}
    assert first["type"] == "answer" and first["index"] == 0 and "bridge" in first["summary"]
    assert {"query", "summary", "sentences", "evidence", "timings", "batch_size"} <= first.keys()
    for e in first["evidence"]:
        assert PLAIN_TEXT[e["start"] : e["end"]] == e["text"]
    assert [line["type"] for line in rest] == ["answer", "done"]
    assert rest[0]["index"] == 1 and rest[0]["query"] == payload["queries"][1]
    assert rest[1] == {"type": "done", "id": "document", "answered": 2, "failed": 0}


def test_a_bad_question_gets_an_error_line_of_its_own_and_the_others_are_answered(extractive):
    held = HeldPipeline(extractive)
    app = create_app(held, ServerConfig(max_wait_ms=0))
    queries = ["What happened to the bridge budget?", "   ", "x" * (MAX_QUERY_CHARS + 1), "boom?", "unfit?",
               "When does the reading room close?"]
    with serve_in_thread(app) as url:
        status, lines = stream_lines(url, request(queries))
        metrics = httpx.get(f"{url}/metrics", timeout=LIMIT).text
    assert status == 200
    by_index = {line["index"]: line for line in lines if "index" in line}
    assert sorted(by_index) == list(range(len(queries)))  # one line per question, whatever happened to it
    assert [by_index[i]["type"] for i in range(len(queries))] == ["answer", "error", "error", "error", "error", "answer"]
    assert by_index[1]["status"] == 422 and by_index[1]["detail"] == "the question is empty"
    assert by_index[2]["status"] == 422 and f"over the {MAX_QUERY_CHARS} limit" in by_index[2]["detail"]
    assert by_index[3]["status"] == 500 and "TypeError" not in by_index[3]["detail"]  # the log has the why
    assert by_index[4] == {"type": "error", "index": 4, "query": "unfit?", "status": 422,
                           "detail": "the question does not fit the writer's input"}
    assert "reading room" in by_index[5]["summary"]
    assert lines[-1] == {"type": "done", "id": "document", "answered": 2, "failed": 4}
    assert all("\n" not in line.get("detail", "") for line in lines)
    # blank and over-long questions never reached the pipeline; the failing batch was re-run one by one
    assert all(q.strip() and len(q) <= MAX_QUERY_CHARS for batch in held.batches for q in batch)
    assert "qfsum_queries_total 2.0" in metrics


@pytest.fixture(scope="module")
def small_server(extractive):
    config = ServerConfig(max_wait_ms=0, max_body_bytes=4096, max_document_chars=1000, max_segments=5,
                          api_key="s3cret")
    with serve_in_thread(create_app(extractive, config)) as url:
        yield url


def post(url: str, payload: dict | None = None, key: str | None = "s3cret", **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{url}{STREAM}", json=payload, headers=headers, timeout=LIMIT, **kwargs)


@pytest.mark.parametrize(("name", "status", "message"), [
    ("too many questions", 422, f"at most {MAX_QUERIES} items"),
    ("no questions", 422, "at least 1 item"),
    ("document over the character limit", 413, "over the server's limit of 1,000"),
    ("document with too many segments", 413, "segments, over the server's limit of 5"),
    ("body over the byte limit", 413, "request body over the 4 KiB limit"),
    ("unreadable document", 422, "malformed JSON"),
    ("wrong key", 401, "missing or wrong API key"),
    ("not JSON", 415, "application/json"),
])
def test_limits_and_bad_requests_get_a_one_line_4xx_before_any_line(small_server, name, status, message):
    small = request(["What happened to the bridge budget?"])
    r = {
        "too many questions": lambda: post(small_server, request(["q?"] * (MAX_QUERIES + 1))),
        "no questions": lambda: post(small_server, request([])),
        "document over the character limit": lambda: post(small_server, request(["q?"], "word " * 300)),
        "document with too many segments": lambda: post(small_server, request(["q?"], "\n\n".join("abcdef"))),
        "body over the byte limit": lambda: post(small_server, request(["q?"], "x" * 5000)),
        "unreadable document": lambda: post(small_server, {**request(["q?"], "{not json"), "format": "qmsum"}),
        "wrong key": lambda: post(small_server, small, key="wrong"),
        "not JSON": lambda: httpx.post(f"{small_server}{STREAM}", content=json.dumps(small),
                                       headers={"Authorization": "Bearer s3cret", "Content-Type": "text/plain"},
                                       timeout=LIMIT),
    }[name]()
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    detail = r.json()["detail"]
    assert message in detail and "\n" not in detail
    assert post(small_server, small).status_code == 200  # the same server answers a request within its limits


def test_a_busy_server_refuses_the_whole_stream_with_429_and_retry_after(extractive):
    held = HeldPipeline(extractive, hold_all=True)
    app = create_app(held, ServerConfig(max_wait_ms=0, max_queue=2))
    with serve_in_thread(app) as url, ThreadPoolExecutor(2) as pool:
        first = pool.submit(stream_lines, url, request(["first?"]))
        wait_for(held.entered.is_set)
        queued = pool.submit(stream_lines, url, request(["a?", "b?"]))
        wait_for(lambda: app.state.runner.queue_depth == 2)
        busy = httpx.post(f"{url}{STREAM}", json=request(["c?"]), timeout=LIMIT)  # 2 + 1 > the queue of 2
        held.gate.set()
        answered = [first.result(), queued.result()]
        status, lines = stream_lines(url, request(["c?"]))
    assert busy.status_code == 429 and int(busy.headers["Retry-After"]) >= 1
    assert "busy" in busy.json()["detail"]
    assert [(s, ls[-1]["answered"]) for s, ls in answered] == [(200, 1), (200, 2)]
    assert status == 200 and lines[-1]["answered"] == 1
    assert held.batches == [["first?"], ["a?", "b?"], ["c?"]]  # the refused request cost no model call


def test_questions_not_answered_by_the_deadline_get_504_lines(extractive):
    held = HeldPipeline(extractive, hold_all=True)
    app = create_app(held, ServerConfig(max_batch_size=1, max_wait_ms=0, deadline_s=30))
    with serve_in_thread(app) as url:
        status, lines = stream_lines(url, request(["late?", "later?"], timeout_s=0.2))
        held.gate.set()
        status_after, after = stream_lines(url, request(["next?"]))
    assert status == 200
    assert [(line["type"], line.get("index"), line.get("status")) for line in lines] == [
        ("error", 0, 504), ("error", 1, 504), ("done", None, None)]
    assert "deadline" in lines[0]["detail"]
    assert status_after == 200 and after[-1]["answered"] == 1
    assert held.batches == [["late?"], ["next?"]]  # "later?" was dropped from the queue, never computed


def test_a_client_that_hangs_up_stops_the_questions_not_yet_started(extractive):
    held = HeldPipeline(extractive, hold_all=True)
    app = create_app(held, ServerConfig(max_batch_size=1, max_wait_ms=0))
    with serve_in_thread(app) as url:
        payload = json.dumps(request(["first?", "second?", "third?"])).encode()
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=LIMIT) as client:  # sends, then hangs up
            client.sendall(b"POST /v1/summarize/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload))
            wait_for(held.entered.is_set)  # "first?" holds the model thread, the others are queued
        # the stream ends (and is counted) once the server has seen the client go
        wait_for(lambda: 'route="/v1/summarize/stream"' in httpx.get(f"{url}/metrics", timeout=LIMIT).text)
        held.gate.set()
        status, lines = stream_lines(url, request(["next?"]))
    assert status == 200 and lines[-1]["answered"] == 1
    assert held.batches == [["first?"], ["next?"]]  # the batch already running finished; the rest never ran


def test_the_naive_server_streams_too_and_isolates_a_failing_question(extractive):
    app = create_app(HeldPipeline(extractive), ServerConfig(mode="naive"))
    with serve_in_thread(app) as url:
        status, lines = stream_lines(url, request(["What happened to the bridge budget?", "boom?"]))
    assert status == 200
    assert sorted((line["index"], line["type"]) for line in lines if "index" in line) == [(0, "answer"), (1, "error")]
    assert lines[-1] == {"type": "done", "id": "document", "answered": 1, "failed": 1}


def test_info_says_the_limits_and_whether_answers_are_generated_without_a_key(small_server, extractive):
    r = httpx.get(f"{small_server}/info", timeout=LIMIT)  # the server has a key: /info stays open, like /healthz
    assert r.status_code == 200
    info = r.json()
    assert info["pipeline"] == extractive.config.name and info["auth"] is True
    assert info["writer"] == "extractive" and info["generative"] is False
    assert info["limits"] == {"max_body_bytes": 4096, "max_document_chars": 1000, "max_segments": 5,
                              "max_queries": MAX_QUERIES, "max_query_chars": MAX_QUERY_CHARS, "deadline_s": 60.0,
                              "min_words": MIN_WORDS, "max_words": MAX_WORDS}
    icon = httpx.get(f"{small_server}/favicon.ico", timeout=LIMIT)
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert icon.text.lstrip().startswith("<svg")
    schema = httpx.get(f"{small_server}/openapi.json", timeout=LIMIT).json()
    assert "application/x-ndjson" in schema["paths"][STREAM]["post"]["responses"]["200"]["content"]

"""Robustness of the server over real HTTP (uvicorn on 127.0.0.1, an ephemeral port): bad input never
gives a 500, one failing query fails alone, estimates recover, work is bounded, saturation is visible,
bodies are bounded in bytes, shutdown answers everyone, and the loopback server guards its Host.

Slow work is a gate (an event the test sets), never a sleep: outcomes do not depend on timing, and
time limits are only hang guards.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from conftest import MEETING_B, PLAIN_TEXT, wait_for  # noqa: E402
from qfsum import Pipeline  # noqa: E402
from qfsum.serving import ServerConfig, create_app  # noqa: E402
from qfsum.serving.app import _unready  # noqa: E402
from qfsum.serving.middleware import LOOPBACK_HOSTS, BodyLimit  # noqa: E402
from qfsum.serving.server import serve_in_thread  # noqa: E402

LIMIT = 60  # seconds: a hang guard for every request, never reached when the server works


class FaultyPipeline:
    """A real pipeline whose batches wait for `gate` (once `hold` is set) and that raises a TypeError, as a
    tokenizer does, for any batch holding a query with "boom" in it."""

    def __init__(self, inner: Pipeline) -> None:
        self.inner, self.config = inner, inner.config
        self.gate, self.entered = threading.Event(), threading.Event()
        self.hold = True
        self.batches: list[list[str]] = []

    def summarize_batch(self, items):
        self.entered.set()
        if self.hold:
            self.gate.wait(timeout=LIMIT)
        queries = [q for _, q in items]
        self.batches.append(queries)
        if any("boom" in q for q in queries):
            raise TypeError("TextEncodeInput must be Union[TextInputSequence, Tuple[InputSequence, InputSequence]]")
        return self.inner.summarize_batch(items)


def body(query: str, document: str = PLAIN_TEXT, **options) -> dict:
    return {"document": document, "queries": [query], "options": options}


def post(url: str, payload: dict | None = None, **kwargs) -> httpx.Response:
    return httpx.post(f"{url}/v1/summarize", json=payload, timeout=LIMIT, **kwargs)


def one_line_error(response: httpx.Response) -> str:
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail and "Traceback" not in detail
    return detail


# ---------------------------------------------------------------------------------------------
# One server for the stateless checks: bad input, headers, methods
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(extractive):
    app = create_app(extractive, ServerConfig(max_wait_ms=0, allowed_hosts=LOOPBACK_HOSTS))
    with serve_in_thread(app) as url:
        yield url


def raw(url: str, text: str, content_type: str = "application/json") -> httpx.Response:
    """POST a body as given (JSON's \\udc00 escapes and all), not re-encoded by a JSON library."""
    return httpx.post(f"{url}/v1/summarize", content=text.encode(), headers={"content-type": content_type},
                      timeout=LIMIT)


DEEP = "[" * 100_000 + "]" * 100_000
BAD_BODIES = {
    "lone surrogate in a query": ('{"document": "Budget talk.", "queries": ["budget \\udc00?"]}', "queries.0"),
    "lone surrogate in the document": ('{"document": "x \\ud800", "queries": ["q"]}', "document"),
    "lone surrogate in a segment": ('{"segments": ["a \\udc00"], "queries": ["q"]}', "segments.0"),
    "lone surrogate in a speaker": ('{"segments": [{"text": "hi", "speaker": "\\udc00"}], "queries": ["q"]}',
                                    "speaker"),
    "lone surrogate in the id": ('{"document": "x", "id": "\\udc00", "queries": ["q"]}', "id"),
    "lone surrogate inside a jsonl document": (
        json.dumps({"document": '{"document": "x \\udc00"}', "format": "jsonl", "queries": ["q"]}), "surrogate"),
    "lone surrogate in a qmsum speaker": (json.dumps({"document": json.dumps(
        {"meeting_transcripts": [{"speaker": "\udc00", "content": "hi"}]}), "format": "qmsum", "queries": ["q"]}),
        "surrogate"),
    "deep nesting inside a qmsum document": (json.dumps({"document": DEEP, "format": "qmsum", "queries": ["q"]}),
                                             "nested too deeply"),
    "deep nesting inside a jsonl document": (
        json.dumps({"document": '{"a": ' + DEEP + "}", "format": "jsonl", "queries": ["q"]}), "nested too deeply"),
    "deep nesting in the body": ('{"document": "x", "queries": ["q"], "options": ' + DEEP + "}",
                                 "nested too deeply"),
    "malformed JSON": ('{"document": "x",', "not valid JSON"),
    "bytes that are not UTF-8": ('{"document": "\udcff"}', "not valid JSON"),
}


@pytest.mark.parametrize("name", BAD_BODIES)
def test_bad_input_gets_one_line_422_never_a_500(server, name):
    text, message = BAD_BODIES[name]
    payload = text.encode("utf-8", "surrogateescape")  # the last case: a raw 0xFF byte
    r = httpx.post(f"{server}/v1/summarize", content=payload, headers={"content-type": "application/json"},
                   timeout=LIMIT)
    assert r.status_code == 422, (name, r.status_code, r.text[:200])
    assert message in one_line_error(r)


def test_a_qmsum_document_with_a_non_list_query_list_gets_422_on_document(server):
    meeting = {**MEETING_B, "general_query_list": 5}
    r = httpx.post(f"{server}/v1/document", json={"document": json.dumps(meeting), "format": "qmsum"}, timeout=LIMIT)
    assert r.status_code == 422 and "general_query_list" in one_line_error(r)


def test_a_body_that_is_not_json_gets_415(server):
    r = raw(server, "document=x&queries=q", "application/x-www-form-urlencoded")
    assert r.status_code == 415 and "application/json" in one_line_error(r)
    assert raw(server, json.dumps(body("bridge?")), "application/json; charset=utf-8").status_code == 200
    no_type = httpx.post(f"{server}/v1/summarize", content=json.dumps(body("bridge?")).encode(), timeout=LIMIT)
    assert no_type.status_code == 415 and "no Content-Type" in one_line_error(no_type)


def test_the_page_has_security_headers_and_head_is_answered(server):
    page = httpx.get(f"{server}/", timeout=LIMIT)
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
    for path in ("/", "/healthz", "/readyz"):
        head = httpx.head(f"{server}{path}", timeout=LIMIT)
        assert head.status_code == 200 and head.content == b"", path


def test_a_keyless_loopback_server_refuses_foreign_host_headers(server):
    port = server.rsplit(":", 1)[1]
    for host in ("evil.example", "evil.example:" + port, "127.0.0.1.evil.example"):
        r = httpx.get(f"{server}/healthz", headers={"Host": host}, timeout=LIMIT)
        assert r.status_code == 421 and "DNS rebinding" in one_line_error(r), host
    for host in ("localhost", "127.0.0.1:" + port, "[::1]:" + port, "LOCALHOST"):
        assert httpx.get(f"{server}/healthz", headers={"Host": host}, timeout=LIMIT).status_code == 200, host


def test_forwarded_headers_are_not_trusted_by_default(extractive):
    app = create_app(extractive, ServerConfig())
    with serve_in_thread(app):
        assert app.state.server.config.proxy_headers is False


hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies
_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=30)  # surrogates included
_nested = st.integers(min_value=1, max_value=3000).map(lambda depth: "[" * depth + "]" * depth)
_document = _text | _nested | _text.map(lambda t: json.dumps({"document": t})) | _text.map(
    lambda t: json.dumps({"meeting_transcripts": [{"speaker": t, "content": t}], "general_query_list": t}))
_fuzz = st.fixed_dictionaries({"queries": st.lists(_text, min_size=1, max_size=2)}, optional={
    "document": _document,
    "segments": st.lists(_text | st.fixed_dictionaries({"text": _text, "speaker": _text}), min_size=1, max_size=3),
    "format": st.sampled_from(["text", "markdown", "jsonl", "qmsum"]),
    "id": _text,
})


@hypothesis.settings(max_examples=120, deadline=None, derandomize=True,
                     suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(payload=_fuzz, wrap=_nested)
def test_fuzzed_bodies_with_surrogates_and_nesting_never_get_a_500(server, payload, wrap):
    text = json.dumps(payload)  # ensure_ascii: a lone surrogate travels as its \\udXXX escape
    for candidate in (text, text[:-1] + ', "options": ' + wrap + "}"):
        r = raw(server, candidate)
        assert r.status_code in (200, 422), (r.status_code, r.text[:300])
        if r.status_code == 422:
            one_line_error(r)


# ---------------------------------------------------------------------------------------------
# Failures, estimates, bounds
# ---------------------------------------------------------------------------------------------


def test_a_query_that_crashes_the_pipeline_fails_alone_in_its_batch(extractive):
    faulty = FaultyPipeline(extractive)
    app = create_app(faulty, ServerConfig(max_batch_size=8, max_wait_ms=0))
    with serve_in_thread(app) as url, ThreadPoolExecutor(4) as pool:
        first = pool.submit(post, url, body("first?"))
        wait_for(faulty.entered.is_set)
        mates = [pool.submit(post, url, body(q)) for q in ("bridge?", "boom?", "library?")]
        wait_for(lambda: app.state.runner.queue_depth == 3)
        faulty.gate.set()
        statuses = [first.result().status_code] + [m.result().status_code for m in mates]
        crashed = mates[1].result()
        after = post(url, body("bridge?"))
    assert statuses == [200, 200, 500, 200]
    assert "pipeline failed" in one_line_error(crashed)
    assert ["boom?", "bridge?", "library?"] in [sorted(b) for b in faulty.batches]  # together, then one by one
    assert ["boom?"] in faulty.batches
    assert after.status_code == 200


def test_one_slow_batch_does_not_lock_an_idle_server_out(extractive):
    app = create_app(extractive, ServerConfig(deadline_s=10))
    with serve_in_thread(app) as url:
        assert post(url, body("warm?")).status_code == 200
        app.state.runner.cost.query_seconds = {1: 3600.0}  # one batch of one took an hour
        answers = [post(url, body(f"bridge {i}?")).status_code for i in range(3)]
    assert answers == [200, 200, 200]
    assert app.state.runner.cost.batch_seconds(1) < 3600.0 * 0.7  # and the estimate recovers


def test_documents_over_the_size_limits_get_413_with_the_reason(extractive):
    app = create_app(extractive, ServerConfig(max_document_chars=5000, max_segments=50))
    with serve_in_thread(app) as url:
        long = post(url, body("q?", "word " * 2000))
        many = post(url, {"segments": [f"unit {i}" for i in range(51)], "queries": ["q?"]})
        fits = post(url, {"segments": [f"unit {i}" for i in range(50)], "queries": ["q?"]})
    assert long.status_code == 413 and "10,000 characters" in one_line_error(long)
    assert "--max-document-chars" in one_line_error(long)
    assert many.status_code == 413 and "51 segments" in one_line_error(many)
    assert fits.status_code == 200


def test_a_document_priced_past_the_deadline_gets_413(extractive):
    app = create_app(extractive, ServerConfig(deadline_s=10))
    with serve_in_thread(app) as url:
        app.state.runner.cost.char_seconds = 0.01  # as measured: 100 characters per second
        r = post(url, body("q?", "word " * 1000))  # 5,000 characters: 50 s of work
    assert r.status_code == 413 and "over the 10 s deadline" in one_line_error(r)


def test_queued_work_of_a_client_that_left_is_never_computed(extractive):
    faulty = FaultyPipeline(extractive)
    app = create_app(faulty, ServerConfig(max_wait_ms=0))
    with serve_in_thread(app) as url, ThreadPoolExecutor(2) as pool:
        first = pool.submit(post, url, body("first?"))
        wait_for(faulty.entered.is_set)
        payload = json.dumps(body("gone?")).encode()
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=LIMIT) as client:  # sends, then hangs up
            client.sendall(b"POST /v1/summarize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
            wait_for(lambda: app.state.runner.queue_depth == 1)
        wait_for(lambda: 'status="499"' in httpx.get(f"{url}/metrics", timeout=LIMIT).text)
        faulty.gate.set()
        assert first.result().status_code == 200
        assert post(url, body("next?")).status_code == 200
    assert faulty.batches == [["first?"], ["next?"]]


def test_readyz_reports_a_full_queue_and_a_stuck_model_thread(extractive):
    faulty = FaultyPipeline(extractive)
    app = create_app(faulty, ServerConfig(max_wait_ms=0, max_queue=2, deadline_s=0.5))
    with serve_in_thread(app) as url, ThreadPoolExecutor(3) as pool:
        assert httpx.get(f"{url}/readyz", timeout=LIMIT).json()["ready"] is True
        first = pool.submit(post, url, body("first?", timeout_s=0.5))
        wait_for(faulty.entered.is_set)
        wait_for(lambda: httpx.get(f"{url}/readyz", timeout=LIMIT).status_code == 503)  # past the 0.5 s deadline
        stuck = httpx.get(f"{url}/readyz", timeout=LIMIT).json()
        health = httpx.get(f"{url}/healthz", timeout=LIMIT)
        faulty.gate.set()
        assert first.result().status_code == 504
        faulty.gate.clear()
        faulty.entered.clear()
        app.state.runner.cost.query_seconds.clear()  # as if nothing were measured: admit two queued queries
        held = pool.submit(post, url, body("held?", timeout_s=30))
        wait_for(faulty.entered.is_set)
        queued = pool.submit(post, url, {"document": PLAIN_TEXT, "queries": ["a?", "b?"], "options": {"timeout_s": 30}})
        wait_for(lambda: app.state.runner.queue_depth == 2)
        full = httpx.get(f"{url}/readyz", timeout=LIMIT)
        faulty.gate.set()
        assert held.result().status_code == 200 and queued.result().status_code == 200
        ready = httpx.get(f"{url}/readyz", timeout=LIMIT)
    assert stuck["ready"] is False and "past the 0.5 s deadline" in stuck["detail"]
    assert health.status_code == 200  # alive, only not ready
    assert full.status_code == 503 and "queue is full" in full.json()["detail"]
    assert ready.status_code == 200


def _body_limit(app) -> BodyLimit:
    layer = app.middleware_stack
    while not isinstance(layer, BodyLimit):
        layer = layer.app
    return layer


def test_bodies_in_flight_are_bounded_in_bytes(extractive):
    app = create_app(extractive, ServerConfig(max_body_bytes=60_000, max_inflight_bytes=100_000))
    with serve_in_thread(app) as url, ThreadPoolExecutor(2) as pool:
        release = threading.Event()

        def slow_upload():  # half a body, then waits: its bytes stay held
            yield b'{"document": "' + b"x" * 50_000
            release.wait(timeout=LIMIT)
            yield b'", "queries": ["q?"]}'

        uploading = pool.submit(httpx.post, f"{url}/v1/summarize", content=slow_upload(),
                                headers={"content-type": "application/json"}, timeout=LIMIT)
        wait_for(lambda: _body_limit(app).in_flight >= 50_000)
        big = post(url, body("q?", "y" * 55_000))  # 50 KB held + 55 KB > 100 KB
        small = post(url, body("bridge?"))
        release.set()
        assert uploading.result().status_code == 200
        alone = post(url, body("q?", "y" * 55_000))
    assert big.status_code == 503 and big.headers["Retry-After"] == "1" and "MiB" in one_line_error(big)
    assert small.status_code == 200 and alone.status_code == 200
    assert _body_limit(app).in_flight == 0


# ---------------------------------------------------------------------------------------------
# Shutdown and load
# ---------------------------------------------------------------------------------------------


def test_sigterm_refuses_queued_work_at_once_and_lets_the_running_batch_finish(extractive):
    faulty = FaultyPipeline(extractive)
    app = create_app(faulty, ServerConfig(max_wait_ms=0, grace_s=30))
    with serve_in_thread(app) as url, ThreadPoolExecutor(2) as pool:
        running = pool.submit(post, url, body("running?"))
        wait_for(faulty.entered.is_set)
        queued = pool.submit(post, url, body("queued?"))
        wait_for(lambda: app.state.runner.queue_depth == 1)
        app.state.server.handle_exit(signal.SIGTERM, None)  # what uvicorn's signal handler calls
        refused = queued.result()  # answered while the running batch still holds the gate
        # readiness asked in-process: uvicorn closes its listening socket after the signal, at a moment of
        # its own, so a new HTTP connection here would race it (/readyz's 503 is tested over HTTP above)
        unready = _unready(app.state.runner, app.state.config)
        faulty.gate.set()
        finished = running.result()
    assert refused.status_code == 503 and "shutting down" in one_line_error(refused)
    assert unready == "shutting down"
    assert finished.status_code == 200
    assert faulty.batches == [["running?"]]


def test_a_batch_running_past_the_grace_period_gets_503(extractive):
    faulty = FaultyPipeline(extractive)
    app = create_app(faulty, ServerConfig(max_wait_ms=0, grace_s=0.05))
    with serve_in_thread(app) as url, ThreadPoolExecutor(1) as pool:
        running = pool.submit(post, url, body("running?"))
        wait_for(faulty.entered.is_set)
        app.state.server.handle_exit(signal.SIGTERM, None)
        late = running.result()
        faulty.gate.set()
    assert late.status_code == 503 and "0.05 s grace period" in one_line_error(late)


def test_64_concurrent_clients_get_answers_or_429_and_nothing_is_lost(extractive):
    app = create_app(extractive, ServerConfig(max_queue=32))
    queries = [f"What about the bridge, take {i}?" for i in range(64)]
    with serve_in_thread(app) as url, ThreadPoolExecutor(64) as pool:
        responses = list(pool.map(lambda q: post(url, body(q)), queries))
    statuses = {r.status_code for r in responses}
    assert statuses <= {200, 429}, statuses
    for query, r in zip(queries, responses):
        if r.status_code == 200:
            assert r.json()["answers"][0]["query"] == query
        else:
            assert int(r.headers["Retry-After"]) >= 1


def test_per_document_caches_are_bounded_in_bytes_as_well_as_entries(extractive):
    from qfsum.cache import LRUCache

    cache: LRUCache[bytes] = LRUCache(capacity=64, max_bytes=100, sizeof=len)
    for key in "abc":
        cache.get_or_make(key, lambda: b"x" * 40)
    assert list(cache._items) == ["b", "c"] and cache.bytes == 80  # "a" went: 120 bytes > 100
    cache.get_or_make("huge", lambda: b"x" * 1000)
    assert list(cache._items) == ["huge"]  # the newest entry stays, whatever its size
    assert LRUCache(capacity=2).get_or_make("k", lambda: 1) == 1  # the count-only cache works as before
    extractive.summarize(PLAIN_TEXT, "bridge?")  # the pipeline's and BM25's caches count their bytes
    assert extractive._segments.max_bytes and extractive._segments.bytes > len(PLAIN_TEXT)
    assert extractive.scorer._indexes.bytes > 0

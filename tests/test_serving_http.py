"""The server over real HTTP (uvicorn on loopback): concurrent requests are batched; 429 and 504.

The pipeline is the extractive one behind a gate: its first call waits until the test has queued
the requests it wants, so batch sizes do not depend on timing.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from conftest import PLAIN_TEXT, wait_for  # noqa: E402
from qfsum import Pipeline  # noqa: E402
from qfsum.serving import ServerConfig, create_app  # noqa: E402
from qfsum.serving.server import serve_in_thread  # noqa: E402


class GatedPipeline:
    """A real pipeline whose first summarize_batch waits for `gate`."""

    def __init__(self, inner: Pipeline) -> None:
        self.inner, self.config = inner, inner.config
        self.gate, self.entered = threading.Event(), threading.Event()
        self.batch_sizes: list[int] = []

    def summarize_batch(self, items):
        self.entered.set()
        self.gate.wait(timeout=60)
        self.batch_sizes.append(len(items))
        return self.inner.summarize_batch(items)


def body(query: str, **options) -> dict:
    return {"document": PLAIN_TEXT, "queries": [query], "options": options}


def post_first(pool: ThreadPoolExecutor, url: str, gated: GatedPipeline):
    """Send a first request and wait until it holds the worker (blocked on the gate)."""
    first = pool.submit(httpx.post, f"{url}/v1/summarize", json=body("bridge?"), timeout=60)
    wait_for(gated.entered.is_set)
    return first


def test_concurrent_http_requests_are_answered_in_one_batch(extractive):
    gated = GatedPipeline(extractive)
    app = create_app(gated, ServerConfig(max_batch_size=16, max_wait_ms=0))
    with serve_in_thread(app) as url, ThreadPoolExecutor(8) as pool:
        first = post_first(pool, url, gated)
        others = [pool.submit(httpx.post, f"{url}/v1/summarize", json=body(f"library {i}?"), timeout=60)
                  for i in range(6)]
        wait_for(lambda: app.state.runner.queue_depth == 6)
        gated.gate.set()
        responses = [first.result()] + [f.result() for f in others]
        metrics = httpx.get(f"{url}/metrics").text
    assert [r.status_code for r in responses] == [200] * 7
    assert gated.batch_sizes == [1, 6]
    assert [r.json()["answers"][0]["batch_size"] for r in responses[1:]] == [6] * 6
    assert max(gated.batch_sizes) > 1
    assert 'qfsum_batch_size_bucket{le="8.0"} 2.0' in metrics and 'qfsum_batch_size_bucket{le="4.0"} 1.0' in metrics


def test_full_queue_answers_429_with_retry_after(extractive):
    gated = GatedPipeline(extractive)
    app = create_app(gated, ServerConfig(max_batch_size=4, max_wait_ms=0, max_queue=2, deadline_s=30))
    with serve_in_thread(app) as url, ThreadPoolExecutor(4) as pool:
        first = post_first(pool, url, gated)
        queued = pool.submit(httpx.post, f"{url}/v1/summarize",
                             json={"document": PLAIN_TEXT, "queries": ["a?", "b?"]}, timeout=60)
        wait_for(lambda: app.state.runner.queue_depth == 2)
        busy = httpx.post(f"{url}/v1/summarize", json=body("c?"), timeout=60)
        gated.gate.set()
        assert first.result().status_code == 200 and queued.result().status_code == 200
        again = httpx.post(f"{url}/v1/summarize", json=body("c?"), timeout=60)  # the queue has drained
    assert busy.status_code == 429
    assert int(busy.headers["Retry-After"]) >= 1
    assert "busy" in busy.json()["detail"]
    assert again.status_code == 200
    assert gated.batch_sizes == [1, 2, 1]


def test_a_request_past_its_deadline_gets_504(extractive):
    gated = GatedPipeline(extractive)
    app = create_app(gated, ServerConfig(max_wait_ms=0, deadline_s=30))
    with serve_in_thread(app) as url, ThreadPoolExecutor(2) as pool:
        first = post_first(pool, url, gated)
        late = httpx.post(f"{url}/v1/summarize", json=body("d?", timeout_s=0.05), timeout=60)
        gated.gate.set()
        assert first.result().status_code == 200
        after = httpx.post(f"{url}/v1/summarize", json=body("e?"), timeout=60)
        metrics = httpx.get(f"{url}/metrics").text
    assert late.status_code == 504 and "within" in late.json()["detail"]
    assert after.status_code == 200
    assert gated.batch_sizes == [1, 1]  # the late query was dropped, never computed
    assert 'qfsum_requests_total{route="/v1/summarize",status="504"} 1.0' in metrics
